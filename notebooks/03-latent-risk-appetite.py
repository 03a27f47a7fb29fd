# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Latent risk appetite: aggressive investors among customers rated conservative
#
# A questionnaire rates a customer once; behaviour shows the appetite every day. The `risk` task
# learns the appetite from customers *free to act on it* (rated aggressive, so nothing caps their
# holdings) and ranks the customers rated conservative by it: the top of that ranking is who an
# adviser should call for a suitability review. On the simulator we can check the ranking against
# the truth (`truth.hidden_aggressive`); on the real SCF 2019 survey against what households hold.
# Same path as `clientlens train risk --features DIR --truth RAW/truth.parquet`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from core import metrics as M
from core.settings import Settings
from core.tasks import HIDDEN_AGGRESSIVE_COLUMN, STATED_CONSERVATIVE, task
from features import contract
from features.panel import build_panel
from features.simulate import simulate
from training.data import read_source
from training.spec import SPECS_DIR, builtin_spec, load_spec
from training.train import WEIGHT_COLUMN, fit_task

work = Settings().home_dir / "notebooks"
raw, feats = work / "raw", work / "features"
if not (feats / "panel.parquet").exists():
    simulate(raw, customers=int(os.environ.get("NB_CUSTOMERS", 2000)), months=15, seed=3)
    build_panel(raw, feats)
trials = int(os.environ.get("NB_TRIALS", 4))
risk = task("risk")

# %% [markdown]
# ## Simulated bank: the model against the truth
# `fit_task` trains on the labelled (free-to-act) customers and scores the stated-conservative ones
# at the test date; with the truth table it reports how well that score finds the hidden aggressive
# investors, next to the baseline (a heuristic on equity browsing and brokerage outflows).

# %%
panel = pd.read_parquet(feats / "panel.parquet")
truth = contract.read_truth(raw)
result = fit_task(builtin_spec("risk", feats), panel, trials=trials, truth=truth)
keys = ["hidden_aggressive_auc", "hidden_aggressive_precision_at_5pct", "hidden_aggressive_base_rate"]
found = pd.DataFrame({"model": result.metrics, "baseline": result.baseline}).loc[keys].round(3)
assert found.loc["hidden_aggressive_auc", "model"] > 0.65  # the ranking finds them, far from chance
assert found.loc["hidden_aggressive_precision_at_5pct", "model"] > 2 * found.loc["hidden_aggressive_base_rate", "model"]
found

# %% [markdown]
# ## Who is flagged
# The stated-conservative customers at the newest as-of date, ranked by P(aggressive): the truly
# aggressive ones sit in the upper tail.

# %%
latest = panel[panel["as_of"] == panel["as_of"].max()]
conservative = latest[latest["stated_risk"] == STATED_CONSERVATIVE].merge(
    truth[["customer_id", HIDDEN_AGGRESSIVE_COLUMN]], on="customer_id"
)
score = result.model.predict_proba(conservative)[:, list(result.model.classes).index("aggressive")]
hidden = conservative[HIDDEN_AGGRESSIVE_COLUMN].astype(bool).to_numpy()
fig, ax = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(0, score.max(), 30)
ax.hist(score[~hidden], bins=bins, alpha=0.6, density=True, label="not aggressive (truth)")
ax.hist(score[hidden], bins=bins, alpha=0.6, density=True, label="hidden aggressive (truth)")
ax.set(xlabel="P(aggressive)", ylabel="density", title="Customers rated conservative")
ax.legend()
plt.show()
top = np.argsort(-score)[: max(1, len(score) // 20)]  # the 5% an adviser would call
print(f"{hidden.mean():.1%} of {len(score):,} rated-conservative customers are aggressive; top 5%: {hidden[top].mean():.1%}")
assert hidden[top].mean() > 2 * hidden.mean()
assert np.median(score[hidden]) > np.median(score[~hidden])

# %% [markdown]
# ## Real data: the SCF 2019 survey
# Households that say they take **no** financial risk (`NOFINRISK = 1`) but hold more than half of
# their financial assets in equity. Every number is weighted by the survey weight `WGT` (the SCF
# oversamples the wealthy); the five implicates of a household stay on one side of the split
# (`training/specs/scf2019_risk.yaml` lists the leaky columns it drops).

# %%
spec = load_spec(SPECS_DIR / "scf2019_risk.yaml")
scf = read_source(spec)
stated = scf[scf["NOFINRISK"] == 1]
aggressive = stated["EQUITY"] > 0.5 * stated["FIN"]
share = float(np.average(aggressive, weights=stated["WGT"]))
print(f"{share:.1%} of US households stating no risk appetite hold mostly equity (weighted)")
assert 0.08 < share < 0.13  # the README's check: 10.3%

# %%
real = fit_task(spec, scf, seed=0, trials=trials)
w = real.holdout[WEIGHT_COLUMN].to_numpy()
print(f"weighted AUC: model {real.metrics['roc_auc']:.3f}, heuristic baseline {real.baseline['roc_auc']:.3f}")
assert real.metrics["roc_auc"] > real.baseline["roc_auc"] + 0.05
assert real.metrics["roc_auc"] < 0.95  # a leak of the holdings would show up as near-perfect
lift = pd.DataFrame({"score": real.proba_test[:, 1], "y": real.y_test, "w": w})
lift["decile"] = pd.qcut(lift["score"].rank(method="first"), 10, labels=range(1, 11))
sums = lift.assign(yw=lift["y"] * lift["w"]).groupby("decile", observed=True)[["yw", "w"]].sum()
by_decile = sums["yw"] / sums["w"]
ax = by_decile.plot.bar(figsize=(7, 3), title="SCF 2019: weighted share holding mostly equity, by score decile")
ax.axhline(np.average(lift["y"], weights=lift["w"]), color="k", lw=1, ls="--")
plt.show()
assert by_decile.iloc[-1] > 2 * np.average(lift["y"], weights=lift["w"])
assert M.lift_at(real.y_test, real.proba_test[:, 1], 0.1, w) > 2
