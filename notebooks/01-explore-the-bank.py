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
# # 01 · Explore the bank: tiers, life-cycle stages, flows and the stated-vs-revealed risk gap
#
# Thin on purpose: every step is a library call you can also run from the CLI (`clientlens simulate`, `clientlens validate`, `clientlens features`). Outputs go under `CLIENTLENS_HOME` (default `./.clientlens`).

# %%
import os

import matplotlib.pyplot as plt
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
# ## The stated-vs-latent risk gap
# Latent-aggressive customers hidden among those rated conservative are what the risk model must find
# (`truth` holds the latent appetite; a real bank only ever sees behaviour).

# %%
truth = contract.read_truth(raw)
customers = contract.read_raw(raw, tables=["customers"])["customers"]
both = customers.merge(truth, on="customer_id")
gap = pd.crosstab(both["stated_risk"], both["latent_risk"], normalize="index").round(3)
# the stated-vs-latent gap: some customers rated conservative are aggressive underneath
assert 0 < gap.loc["conservative", "aggressive"] < 0.5
ax = gap.plot.barh(stacked=True, figsize=(8, 2.5), title="Latent appetite by stated risk (share of customers)")
ax.legend(title="latent", loc="center left", bbox_to_anchor=(1, 0.5))
plt.tight_layout()
plt.show()
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

# %% [markdown]
# ## Tiers and life-cycle stages
# A value pyramid (mass first), and wealth that grows with the life cycle.

# %%
assert set(registry.feature_names()) <= set(panel.columns)
tiers = panel["tier"].value_counts(normalize=True).round(4)
assert tiers.index[0] == "mass" and set(tiers.index) <= {"mass", "affluent", "hnw"}  # a pyramid: mass first
latest = panel[panel["as_of"] == panel["as_of"].max()]
stages = pd.crosstab(latest["lifecycle_stage"], latest["tier"], normalize="index")
stages = stages.reindex(["young_professional", "family_growth", "retirement"])[["mass", "affluent", "hnw"]].fillna(0)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3))
tiers.plot.bar(ax=a1, logy=True, rot=0, title="Tier share (log scale)")
(1 - stages["mass"]).plot.bar(ax=a2, rot=0, title="Share above mass, by life-cycle stage")
plt.tight_layout()
plt.show()
assert stages.loc["retirement", "mass"] < stages.loc["young_professional", "mass"]  # wealth builds with age
stages.round(3)

# %% [markdown]
# ## Flows
# Money in and out by month, and the flow a churner leaves behind: before churning, balances move to
# other banks (the label's AUM halving follows).

# %%
tx = contract.read_raw(raw, tables=["transactions"])["transactions"]
monthly = tx.assign(month=tx["ts"].dt.to_period("M")).pivot_table(
    index="month", columns="direction", values="amount", aggfunc="sum", observed=True
)
labelled = panel[panel["churn"].notna()]
by_label = labelled.groupby("churn")[["outflow_external_bank_90d", "net_flow_90d"]].median()
by_label.index = by_label.index.map({0.0: "stays", 1.0: "churns"})
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3))
monthly.plot(ax=a1, title="Transaction amounts per month")
by_label.plot.bar(ax=a2, rot=0, title="Median 90-day flows by the churn label")
plt.tight_layout()
plt.show()
assert (monthly[["in", "out"]] > 0).all().all()
assert by_label.loc["churns", "outflow_external_bank_90d"] > by_label.loc["stays", "outflow_external_bank_90d"]
assert by_label.loc["churns", "net_flow_90d"] < by_label.loc["stays", "net_flow_90d"]
by_label.round(0)

# %% [markdown]
# ## Stated vs revealed
# The `revealed_risk` label exists only for customers free to act on their appetite (rated
# aggressive): a conservative or balanced rating caps what they may buy, so it cannot reveal more.

# %%
revealed = pd.crosstab(panel["stated_risk"], panel["revealed_risk"].fillna("(no label)"))
assert revealed.loc["conservative"].drop("(no label)", errors="ignore").sum() == 0  # censored by the rating
assert revealed.loc["aggressive", "aggressive"] > 0
revealed
