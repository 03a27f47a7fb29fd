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
# # 04 · Drift and retraining
#
# The MLOps loop on a simulated bank: a churn champion trained on the early months, a later window
# compared with its reference sample (`monitoring.drift`), the market context read apart from
# customer drift, performance estimated before labels on the task's eligible population, and the
# retraining decision (`monitoring.retrain`, what `clientlens retrain churn --if-drift` runs).

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

from core.settings import Settings
from core.tasks import task
from features.panel import build_panel
from features.simulate import simulate
from monitoring.config import DriftConfig
from monitoring.drift import run_file_drift
from monitoring.retrain import retrain
from training import registry
from training.promote import promote
from training.spec import builtin_spec
from training.train import run_training

settings = Settings()
churn = task("churn")
work = settings.home_dir / "notebooks"
raw, feats = work / "raw", work / "features"
if not (feats / "panel.parquet").exists():
    simulate(raw, customers=int(os.environ.get("NB_CUSTOMERS", 2000)), months=15, seed=3)
    build_panel(raw, feats)
trials = int(os.environ.get("NB_TRIALS", 4))
panel = pd.read_parquet(feats / "panel.parquet")
dates = sorted(panel["as_of"].unique())

# %% [markdown]
# ## A champion from the early months
# Trained on the first three as-of dates only, so the newest data is a window it has never seen.

# %%
early = work / "features_early"
early.mkdir(parents=True, exist_ok=True)
panel[panel["as_of"].isin(dates[:3])].to_parquet(early / "panel.parquet", index=False)
first = run_training(builtin_spec("churn", early), seed=0, trials=trials, plots=False)
# forced: an earlier notebook may have left a champion trained on every month
promote("churn", force="notebook 04 starts from a champion of the early months")
champion_version = first["version"]
{"version": champion_version, "roc_auc at training": round(first["metrics"]["roc_auc"], 4)}

# %% [markdown]
# ## The newest window against the champion's reference sample
# The current window is every customer at the last as-of date, scored by the champion.

# %%
model, _ = registry.load_champion("churn")
reference = registry.load_reference("churn")
labels = [t.label for t in (task("tier"), churn, task("risk"))]
current = panel[panel["as_of"] == dates[-1]].drop(columns=labels)
current = current.assign(**{churn.score_column(): model.predict_proba(current)[:, 1]})
# Evidently's own HTML is skipped to keep this quick; the verdicts never depend on it. The report
# goes under <reports>/drift/churn/, where `clientlens retrain` looks for the newest verdict.
result = run_file_drift(reference, current, None, DriftConfig(evidently_report=False), task="churn", settings=settings)
{"status": result.status, "share drifted": round(result.share_drifted, 3), "PSI": result.psi, "report": result.report}

# %% [markdown]
# Features that moved most (normed statistic against its threshold; 1 = the drift line):

# %%
moved = sorted(result.columns, key=lambda c: -(c.statistic / c.threshold if c.threshold else 0))[:12]
fig, ax = plt.subplots(figsize=(8, 4))
ax.barh([c.column for c in moved][::-1], [c.statistic / c.threshold for c in moved][::-1])
ax.axvline(1.0, color="k", lw=1)
ax.set_xlabel("statistic / threshold")
ax.set_title(f"churn drift at {pd.Timestamp(dates[-1]).date()}: {result.status}")
plt.show()

# %% [markdown]
# ## Market context, not customer drift
# Index returns and deposit rates are one value per date: comparing two dates always "drifts" them,
# which says nothing about customers. They are reported with their values at each date instead.

# %%
context = pd.DataFrame(
    {col: {"reference": c["reference_value"], "current": c["current_value"]} for col, c in result.context.items()}
).T
assert "deposit_rate_1y" in result.context and not set(result.context) & set(result.drifted)
context

# %% [markdown]
# ## Performance before labels, on the right population
# Churn's label exists only above the AUM minimum; the estimate (CBPE) counts those customers only.

# %%
estimate = result.estimated_performance["churn"]
eligible = int(churn.eligibility.mask(current).sum())
assert estimate["rows"] == eligible < len(current)
{k: estimate[k] for k in ("roc_auc", "pr_auc", "rows", "rows_window", "population", "calibration")}

# %% [markdown]
# ## The retraining decision
# `retrain` reads the newest drift verdict of the task; with `if_drift=True` it trains only on a
# `drift` verdict. Otherwise it rebuilds the features from the raw folder, trains a challenger on
# the same spec, and the gate compares it with the champion on the newest holdout.

# %%
decision = retrain("churn", raw, if_drift=True, trials=trials, settings=settings)
if result.status != "drift":
    assert decision["retrained"] is False and decision["champion"] == champion_version
    decision = retrain("churn", raw, trials=trials, settings=settings)  # the scheduled run, no trigger
{k: decision.get(k) for k in ("retrained", "promoted", "champion", "challenger", "reason")}

# %% [markdown]
# The chain is on the challenger's model version in MLflow: the trigger, the drift report, the run,
# the gate's numbers and its decision. The champion alias follows the decision.

# %%
client = registry.client()
tags = client.get_model_version(registry.model_name("churn"), decision["challenger"]).tags
now_champion = str(client.get_model_version_by_alias(registry.model_name("churn"), "champion").version)
assert tags["retrain_decision"] == ("promoted" if decision["promoted"] else "rejected")
assert now_champion == (decision["challenger"] if decision["promoted"] else champion_version)
{k: v for k, v in sorted(tags.items()) if k.startswith(("retrain_", "promotion_"))}
