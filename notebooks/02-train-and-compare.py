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
# # 02 · Train, register and explain a churn model
#
# The same path as `clientlens train churn --features DIR` and `clientlens promote churn`: Optuna-tuned LightGBM, calibrated, compared with its logistic-regression baseline on the same out-of-time split, logged to MLflow and registered.

# %%
import os

import pandas as pd

from core.settings import Settings
from features.panel import build_panel
from features.simulate import simulate
from training.promote import promote
from training.registry import load_champion
from training.spec import builtin_spec
from training.train import run_training

work = Settings().home_dir / "notebooks"
raw, feats = work / "raw", work / "features"
if not (feats / "panel.parquet").exists():
    simulate(raw, customers=int(os.environ.get("NB_CUSTOMERS", 2000)), months=15, seed=3)
    build_panel(raw, feats)

# %%
result = run_training(builtin_spec("churn", feats), seed=0, trials=int(os.environ.get("NB_TRIALS", 4)), plots=False)
assert result["metrics"]["roc_auc"] > result["baseline"]["roc_auc"]  # beats its logistic-regression baseline
pd.DataFrame({"model": result["metrics"], "baseline": result["baseline"]}).dropna().round(4)

# %%
decision = promote("churn")
decision

# %% [markdown]
# ## Reason codes
# Per-prediction contributions come from LightGBM itself (`pred_contrib`), in log-odds.

# %%
model, info = load_champion("churn")
latest = pd.read_parquet(feats / "latest.parquet")
scores = model.predict_proba(latest)[:, 1]
top = latest.assign(churn_proba=scores).nlargest(3, "churn_proba")
explained = model.reasons(top, top_k=3)
assert all(len(r) == 3 and r[0]["feature"] in model.features for r in explained)  # three reasons each, named features
for (_, row), reasons in zip(top.iterrows(), explained):
    print(
        int(row.customer_id), round(row.churn_proba, 3), [(r["feature"], round(r["contribution"], 3)) for r in reasons]
    )
