"""The serving tests' risk champion is the shipped risk model (#12): the same spec but for budget and split."""

from __future__ import annotations

from tests.serving.champions import task_spec
from training.spec import builtin_spec


def test_the_risk_champion_is_trained_from_the_shipped_spec(tmp_path):
    panel = tmp_path / "panel.parquet"  # a spec does not read its source
    shipped, champion = builtin_spec("risk", tmp_path), task_spec("risk", panel, max_rounds=30)
    assert champion.risk_posterior is not None and champion.risk_posterior == shipped.risk_posterior
    for field in ("target", "features", "baseline", "boost_from_baseline", "hidden_aggressive", "keep_columns",
                  "calibration"):  # fmt: skip
        assert getattr(champion, field) == getattr(shipped, field), field
    posterior_columns = [shipped.risk_posterior.stated_column, shipped.risk_posterior.stated_age_days,
                         *shipped.risk_posterior.measures, *shipped.risk_posterior.covariates]  # fmt: skip
    assert set(posterior_columns) <= set(champion.features or [])
    assert champion.tuning.monotone == shipped.tuning.monotone and champion.tuning.space == shipped.tuning.space
    # only the budget and the split differ: one trial on a two-date panel
    assert champion.tuning.trials == 1 and champion.tuning.max_rounds == 30 and champion.split.kind == "random"
    full = task_spec("risk", panel, max_rounds=300, full_rounds=True)
    assert full.tuning.early_stopping_rounds == 300  # the serving benchmark's exact tree count
