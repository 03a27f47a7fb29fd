"""Labels at horizon H after an as-of date T (DESIGN §5). Exact definitions in `LABELS_DOC`.

Labels look only at (T, T+H]: holdings at the last snapshot <= T+H (which must be later
than T's snapshot), transactions with T + 1 day <= ts < T + H + 1 day. Churn and the future tier read H
in whole months instead (their snapshot can be a few days past T+H, see `horizon_months`). They also use the
state at T (AUM at T's snapshot, stated risk known at T) as the base, which is allowed:
that is information available at T.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features import vocab
from features.build import (
    DAY_NS,
    RISK_MAX_LEVEL,
    Prepared,
    aum_at,
    last_at_or_before,
    prepare,
    ratio,
    reviewed_risk_at,
    stated_risk_at,
    tier_of,
)
from features.config import FeatureConfig, LabelConfig

LABELS_DOC = """
## Labels

Labels sit beside the features in `panel.parquet` (not in `latest.parquet`). Horizon H
defaults to 90 days (`LabelConfig.horizon_days`, `--horizon-days`). They look only at the
interval (T, T+H]: holdings at **S_H = the last snapshot <= T+H**, transactions with
T + 1 day <= `ts` < T + H + 1 day. The one exception is S_C (below), the month-end snapshot
`tier_future` and `churn` are read at: it can lie up to 2 days past T+H (3 month ends after a
Feb 29 or Jul 31 month end are 92 days later); readers allow `LABEL_SNAPSHOT_SLACK_DAYS` (7). The base values at T (AUM at S_T = the last snapshot
<= T, `stated_risk` known at T) are information available at T. Every label is
null/NaN when S_H does not exist or is not later than S_T (no information after T).

| label | type | definition |
|---|---|---|
| `tier_future` | string mass / affluent / hnw | tier of AUM at **S_C** (the same whole-month snapshot as `churn`, below) with the configured thresholds (default mass < 500,000 <= affluent < 10,000,000 <= hnw). A customer holding nothing at S_C is `mass`. Null where S_C is not in the data. |
| `churn` | float 1.0 / 0.0 / NaN | read at **S_C = the month-end snapshot round(H / 30.44) calendar months after S_T** (at least one; 90 days -> 3 months, 89-92 days after S_T at every month end), not at S_H: the last snapshot <= T+H is three month ends after a Nov, Dec or Jan month end and two after the others, so the label would mean a different outcome at different as-of dates. NaN where S_C is not in the data. Defined (0/1) only for customers with AUM at S_T >= `churn_min_aum` (default 10,000), NaN otherwise. 1.0 if AUM at S_C <= `churn_aum_fraction` (default 0.5) x AUM at S_T, or the customer holds no product at all (assets or liabilities) at S_C; else 0.0. |
| `revealed_risk` | string conservative / balanced / aggressive / null | defined only for customers **free to act on their appetite**: stated risk at T allows buying R4 or above at the bank (`vocab.MAX_RISK_LEVEL_FOR` -> only `aggressive`; `balanced` is capped at R3, so an aggressive appetite could not show in its bank holdings and its label would be censored; those customers get null, as do conservative ones and customers whose stated risk is unknown at T). Over (T, T+H]: base B = AUM at S_H + investment_buy amounts + outflows to brokerages; high-risk amount A = AUM in R4-R5 at S_H + investment_buy amounts of R4-R5 products (risk from `product_type`) + outflows to brokerages; mid-risk amount M = AUM in R3 at S_H + investment_buy amounts of R3 products. `aggressive` if A / B >= 0.30, else `balanced` if (A + M) / B >= 0.15, else `conservative`; null when B < 10,000 (nothing to reveal). Thresholds are `LabelConfig` fields. |
| `reviewed_risk` | string conservative / balanced / aggressive / null | not a label but carried like one (panel only, fitting only, #12): the class of the customer's latest suitability review (`suitability_reviews`) dated on or before T; null when there is none or the table is absent. Never a later review. The risk posterior's fit reads it as anchor rows (`risk_posterior.anchor_column`); specs that take every column drop it. |
"""


def labels_at(
    prep: Prepared,
    as_of,
    config: LabelConfig | None = None,
    feature_config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """`customer_id`, `tier_future`, `churn`, `revealed_risk` for every customer in `prep` at `as_of`."""
    config = config or LabelConfig()
    feature_config = feature_config or FeatureConfig()
    as_of = pd.Timestamp(as_of).normalize()
    t_end = (as_of + pd.Timedelta(days=1)).value
    h_end = t_end + config.horizon_days * DAY_NS
    n = prep.n
    tier_future = np.full(n, None, dtype=object)
    churn = np.full(n, np.nan)
    revealed = np.full(n, None, dtype=object)
    out = pd.DataFrame({"customer_id": prep.customer_ids})
    snaps = prep.snapshot_dates
    i_t, i_h = last_at_or_before(snaps, t_end - 1), last_at_or_before(snaps, h_end - 1)
    if prep.ho is None or i_h < 0 or i_h <= i_t:
        out["tier_future"], out["churn"], out["revealed_risk"] = tier_future, churn, revealed
        out["reviewed_risk"] = reviewed_risk_at(prep, t_end)
        return out
    s_h = int(snaps[i_h])
    s_t = int(snaps[i_t]) if i_t >= 0 else None
    aum_t, aum_h = aum_at(prep, [s_t, s_h]).T

    ho = prep.ho
    at_h = ho["snap"] == s_h
    i_c = _horizon_snapshot(snaps, i_t, config)
    if i_c >= 0:
        (aum_c,) = aum_at(prep, [int(snaps[i_c])]).T
        tier_future = tier_of(aum_c, feature_config)
        churn = _churn(prep, int(snaps[i_c]), aum_t, aum_c, config)

    # revealed risk
    stated = stated_risk_at(prep, t_end)
    min_level = int(config.revealed_min_allowed_level[1])
    free = np.array([r is not None and RISK_MAX_LEVEL.get(r, 0) >= min_level for r in stated], dtype=bool)
    asset_h = at_h & ~ho["liab"]
    by_risk = np.bincount(
        ho["cust"][asset_h] * 6 + ho["risk"][asset_h], weights=ho["value"][asset_h], minlength=n * 6
    ).reshape(n, 6)
    high = by_risk[:, 4] + by_risk[:, 5]
    mid = by_risk[:, 3].copy()
    base = aum_h.copy()
    if prep.tx is not None:
        tx = prep.tx
        w = (tx["ts"] >= t_end) & (tx["ts"] < h_end)
        buy = w & (tx["cat"] == vocab.TXN_CATEGORIES.index("investment_buy"))
        broker = (
            w
            & (tx["cp"] == vocab.COUNTERPARTIES.index("brokerage"))
            & (tx["dir"] == vocab.DIRECTIONS.index("out"))
            & ~buy
        )
        for mask, add_high, add_mid in (
            (buy, buy & (tx["risk"] >= 4), buy & (tx["risk"] == 3)),
            (broker, broker, None),
        ):
            base += np.bincount(tx["cust"][mask], weights=tx["amount"][mask], minlength=n)
            high += np.bincount(tx["cust"][add_high], weights=tx["amount"][add_high], minlength=n)
            if add_mid is not None:
                mid += np.bincount(tx["cust"][add_mid], weights=tx["amount"][add_mid], minlength=n)
    share_high, share_mid = ratio(high, base), ratio(high + mid, base)
    label = np.where(
        share_high >= config.revealed_aggressive_share,
        "aggressive",
        np.where(share_mid >= config.revealed_balanced_share, "balanced", "conservative"),
    ).astype(object)
    label[~free | ~(base >= config.revealed_min_base)] = None
    revealed = label
    out["tier_future"], out["churn"], out["revealed_risk"] = tier_future, churn, revealed
    out["reviewed_risk"] = reviewed_risk_at(prep, t_end)
    return out


# Holdings are month-end snapshots (the raw contract), so a horizon of H days is read as a whole number of
# months. The last snapshot <= T + H is not: 90 days after a month end reaches three month ends for the Nov,
# Dec and Jan month ends (their next three months hold 89-90 days) and two for every other month, so the
# label would measure a 3-month outcome at some as-of dates and a 2-month one at the rest.
MONTH_DAYS = 365.25 / 12
# The month-rounded snapshot can lie a few days past T + H (3 months after Jul 31 is 92 days): readers of raw
# holdings for labels at T read this many days further (`features.panel.read_task`).
LABEL_SNAPSHOT_SLACK_DAYS = 7


def horizon_months(horizon_days: int) -> int:
    """The churn label's horizon in month-end snapshots: H days rounded to whole months (at least one)."""
    return max(1, round(horizon_days / MONTH_DAYS))


def _horizon_snapshot(snaps: np.ndarray, i_t: int, config: LabelConfig) -> int:
    """Index of S_C, the snapshot `horizon_months(H)` calendar months after S_T, or -1 when it is not in the
    data (the horizon is not observed yet) or T precedes every snapshot."""
    if i_t < 0:
        return -1
    months = np.asarray(snaps).astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    target = months[i_t] + horizon_months(config.horizon_days)
    i_c = int(np.searchsorted(months, target))
    return i_c if i_c < len(snaps) and months[i_c] == target else -1


def _churn(prep: Prepared, s_c: int, aum_t: np.ndarray, aum_c: np.ndarray, config: LabelConfig) -> np.ndarray:
    """Churn (see `LABELS_DOC`): AUM at S_C against AUM at S_T, for customers eligible at T."""
    if prep.ho is None:  # no holdings at all: nothing is observed
        return np.full(prep.n, np.nan)
    products_c = np.bincount(prep.ho["cust"][prep.ho["snap"] == s_c], minlength=prep.n)
    eligible = aum_t >= config.churn_min_aum  # False where aum_t is NaN
    churned = (aum_c <= config.churn_aum_fraction * aum_t) | (products_c == 0)
    return np.where(eligible, churned.astype(np.float64), np.nan)


def build_labels(
    tables: Mapping[str, pd.DataFrame | None],
    as_of,
    config: LabelConfig | None = None,
    feature_config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """Labels at `as_of` + horizon from raw frames (see `LABELS_DOC`)."""
    return labels_at(prepare(tables), as_of, config, feature_config)
