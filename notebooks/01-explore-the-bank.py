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
# # 01 · A simulated bank, its raw tables and its features
#
# Thin on purpose: every step is a library call you can also run from the CLI (`clientlens simulate`, `clientlens validate`, `clientlens features`). Outputs go under `CLIENTLENS_HOME` (default `./.clientlens`).

# %%
import os

import pandas as pd

from core.settings import Settings
from features import contract, registry
from features.panel import build_panel
from features.simulate import simulate

CUSTOMERS = int(os.environ.get("NB_CUSTOMERS", 2000))
work = Settings().home_dir / "notebooks"
raw, feats = work / "raw", work / "features"

# %% [markdown]
# ## Simulate and validate
# The simulator writes the five raw tables of the contract plus `truth` (latent values, read only by evaluation code).

# %%
rows = simulate(raw, customers=CUSTOMERS, months=15, seed=3)
summary = contract.validate_raw(raw)
pd.Series(rows, name="rows")

# %% [markdown]
# ## Who is in the bank
# Latent-aggressive customers hidden among those rated conservative are what the risk model must find.

# %%
truth = contract.read_truth(raw)
customers = contract.read_raw(raw, tables=["customers"])["customers"]
both = customers.merge(truth, on="customer_id")
gap = pd.crosstab(both["stated_risk"], both["latent_risk"], normalize="index").round(3)
# the stated-vs-revealed gap: some customers rated conservative are aggressive underneath
assert 0 < gap.loc["conservative", "aggressive"] < 0.5
gap

# %% [markdown]
# ## Features and labels
# A panel of point-in-time features over several as-of dates, with labels at a 90-day horizon.

# %%
panel_summary = build_panel(raw, feats, workers=1)
panel = pd.read_parquet(feats / "panel.parquet")
print(panel_summary["rows"], "rows ×", panel_summary["columns"], "columns; as-of dates:", len(panel_summary["as_of"]))
panel.groupby("as_of").agg(
    customers=("customer_id", "size"), churn_rate=("churn", "mean"), revealed=("revealed_risk", "count")
).tail()

# %%
pd.Series(
    {f: len(registry.features_of_family(f)) for f in ("behaviour", "holdings", "profile", "market", "segment")},
    name="features",
)

# %%
assert set(registry.feature_names()) <= set(panel.columns)
tiers = panel["tier"].value_counts(normalize=True).round(4)
assert tiers.index[0] == "mass" and set(tiers.index) <= {"mass", "affluent", "hnw"}  # a pyramid: mass first
tiers
