"""Features at an as-of date T from the raw tables (DESIGN §5), point in time.

Pure functions of frames and an explicit config: `build_features(tables, as_of, config)`.
For several as-of dates over the same rows, `prepare(tables)` once and call
`features_at(prepared, as_of, config)` per date (what `features.panel` does).

Point in time: transactions and events count when `ts < T + 1 day` (on or before the
calendar day T), holdings when `snapshot_date <= T`, market when `date <= T`, the risk
questionnaire when `risk_assessed_on <= T`. Windows of N days are the N calendar days up
to and including T. Everything is vectorised over integer customer codes (np.bincount on
combined keys, one pass per table per date); no per-customer Python loops.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import pandas as pd

from features import registry, vocab
from features.config import FeatureConfig
from features.registry import windowed

log = logging.getLogger(__name__)

DAY_NS = 86_400 * 10**9
# Windows (days before T) the behaviour cubes are counted over (`window_counts`)
CUBE_WINDOWS = (30, 60, 90, 180)
N_WEEKS = 26

CATEGORIES = vocab.TXN_CATEGORIES
COUNTERPARTIES = vocab.COUNTERPARTIES
CHANNELS = vocab.CHANNELS
N_CAT, N_CP, N_DIR, N_CH = len(CATEGORIES), len(COUNTERPARTIES), 2, len(CHANNELS)
EVENT_TYPES = vocab.EVENT_TYPES
TOPICS = vocab.TOPICS
N_ETYPE, N_TOPIC = len(EVENT_TYPES), len(TOPICS) + 1  # last topic slot = null
FAMILY_CODES = {fam: i for i, fam in enumerate(vocab.PRODUCT_FAMILIES)}
# product_type code -> risk level 1..5, family code, liability (index len(PRODUCT_TYPES) = unknown)
_PT_RISK = np.array([int(vocab.PRODUCTS[p][1][1]) for p in vocab.PRODUCT_TYPES] + [0], dtype=np.int8)
_PT_FAMILY = np.array([FAMILY_CODES[vocab.PRODUCTS[p][0]] for p in vocab.PRODUCT_TYPES] + [-1], dtype=np.int8)
RISK_MAX_LEVEL = {k: int(v[1]) for k, v in vocab.MAX_RISK_LEVEL_FOR.items()}


def _codes(series: pd.Series, categories: Sequence[str]) -> np.ndarray:
    """Codes of `series` in the closed vocabulary (-1 for null or unknown); cheap for pandas categoricals."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.set_categories(list(categories)).cat.codes.to_numpy(np.int8)
    return pd.Categorical(series, categories=list(categories)).codes.astype(np.int8)


def _ns(values) -> np.ndarray:
    """datetime-like column -> int64 nanoseconds (NaT -> min int)."""
    arr = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else np.asarray(values)
    if arr.dtype.kind != "M":
        arr = pd.to_datetime(values, cache=False).to_numpy()
        if getattr(arr.dtype, "tz", None) is not None:  # pragma: no cover - contract gives tz-naive
            arr = arr.tz_localize(None)
    return arr.astype("datetime64[ns]").view(np.int64)


@dataclass
class Prepared:
    """Raw tables of one customer range as compact numpy arrays keyed by customer position."""

    customer_ids: np.ndarray
    customers: pd.DataFrame  # indexed by position, columns of the raw table
    tx: dict[str, np.ndarray] | None = None
    ev: dict[str, np.ndarray] | None = None
    ho: dict[str, np.ndarray] | None = None
    market: dict[str, np.ndarray] | None = None
    reviews: dict[str, np.ndarray] | None = None  # suitability reviews (#12): cust, ts, risk class index
    snapshot_dates: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))

    @property
    def n(self) -> int:
        return len(self.customer_ids)

    @property
    def missing_tables(self) -> list[str]:
        present = {
            "customers": True,
            "transactions": self.tx is not None,
            "events": self.ev is not None,
            "holdings": self.ho is not None,
            "market": self.market is not None,
            "suitability_reviews": self.reviews is not None,
        }
        return [t for t in vocab.TABLES if not present[t]]


def positions(ids: np.ndarray, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each id in the sorted, unique `customer_ids` (clipped), and whether it is there."""
    n = len(customer_ids)
    if n and int(customer_ids[-1]) - int(customer_ids[0]) == n - 1:  # dense ids: an offset, no search
        pos = ids - customer_ids[0]
        ok = pos.view(np.uint64) < n if pos.dtype == np.int64 else (pos >= 0) & (pos < n)  # negative -> huge
        return (pos if ok.all() else np.clip(pos, 0, n - 1)).astype(np.int32), ok
    pos = np.minimum(np.searchsorted(customer_ids, ids), max(n - 1, 0))
    ok = (customer_ids[pos] == ids) if len(customer_ids) else np.zeros(len(ids), dtype=bool)
    return pos.astype(np.int32), ok


def prepare(tables: Mapping[str, pd.DataFrame | None], snapshot_dates: Sequence | np.ndarray | None = None) -> Prepared:
    """Turn raw frames (the contract in docs/ARCHITECTURE.md) into arrays; absent tables stay None.

    `snapshot_dates`: the holdings snapshot calendar of the whole data set; by default the dates
    present in `tables["holdings"]` (pass the global calendar when `tables` is one customer range,
    so a range where nobody holds anything on some month-end still knows the month-end exists).
    """
    customers = tables.get("customers")
    if customers is None:
        from core.errors import InputError

        raise InputError("customers table is required to build features")
    customers = customers.sort_values("customer_id", kind="stable").drop_duplicates("customer_id")
    customer_ids = customers["customer_id"].to_numpy(np.int64)
    prep = Prepared(customer_ids=customer_ids, customers=customers.reset_index(drop=True))

    tx = tables.get("transactions")
    if tx is not None:
        pos, ok = positions(tx["customer_id"].to_numpy(np.int64), customer_ids)
        pt = _codes(tx["product_type"], vocab.PRODUCT_TYPES) if "product_type" in tx else np.full(len(tx), -1, np.int8)
        arrays = {
            "cust": pos,
            "ts": _ns(tx["ts"]),
            "amount": tx["amount"].to_numpy(np.float64),
            "dir": _codes(tx["direction"], vocab.DIRECTIONS),
            "cat": _codes(tx["category"], CATEGORIES),
            "cp": _codes(tx["counterparty"], COUNTERPARTIES),
            "ch": _codes(tx["channel"], CHANNELS),
            "risk": _PT_RISK[np.where(pt < 0, len(vocab.PRODUCT_TYPES), pt)],
        }
        keep = ok & (arrays["dir"] >= 0)
        prep.tx = {k: v[keep] for k, v in arrays.items()} if not keep.all() else arrays
    ev = tables.get("events")
    if ev is not None:
        pos, ok = positions(ev["customer_id"].to_numpy(np.int64), customer_ids)
        arrays = {
            "cust": pos,
            "ts": _ns(ev["ts"]),
            "type": _codes(ev["event_type"], EVENT_TYPES),
            "topic": _codes(ev["topic"], TOPICS),
        }
        keep = ok & (arrays["type"] >= 0)
        prep.ev = {k: v[keep] for k, v in arrays.items()} if not keep.all() else arrays
    ho = tables.get("holdings")
    if ho is not None:
        pos, ok = positions(ho["customer_id"].to_numpy(np.int64), customer_ids)
        pt = _codes(ho["product_type"], vocab.PRODUCT_TYPES)
        arrays = {
            "cust": pos,
            "snap": _ns(ho["snapshot_date"]),
            "value": ho["market_value"].to_numpy(np.float64),
            "liab": ho["is_liability"].to_numpy(bool),
            "risk": _codes(ho["risk_level"], vocab.RISK_LEVELS).astype(np.int8) + 1,  # 1..5, 0 unknown
            "family": _PT_FAMILY[np.where(pt < 0, len(vocab.PRODUCT_TYPES), pt)],
            "mortgage": (pt == vocab.PRODUCT_TYPES.index("mortgage")),
        }
        # a liability's family is "liability" even for an unknown product type
        arrays["family"] = np.where(arrays["liab"], FAMILY_CODES["liability"], arrays["family"]).astype(np.int8)
        prep.ho = {k: v[ok] for k, v in arrays.items()} if not ok.all() else arrays
        if snapshot_dates is None:
            snapshot_dates = np.unique(arrays["snap"])
    if snapshot_dates is not None:
        prep.snapshot_dates = np.unique(_ns(pd.Series(snapshot_dates)))
    rv = tables.get("suitability_reviews")
    if rv is not None:
        pos, ok = positions(rv["customer_id"].to_numpy(np.int64), customer_ids)
        risk = _codes(rv["reviewed_risk"], vocab.RISK_CLASSES)
        keep = ok & (risk >= 0)
        prep.reviews = {"cust": pos[keep], "ts": _ns(rv["reviewed_at"])[keep], "risk": risk[keep]}
    mk = tables.get("market")
    if mk is not None:
        mk = mk.sort_values("date")
        prep.market = {
            "date": _ns(mk["date"]),
            "index": mk["equity_index"].to_numpy(np.float64),
            "rate": mk["deposit_rate_1y"].to_numpy(np.float64),
        }
    return prep


# --------------------------------------------------------------------------- helpers


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 or NaN."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return out


@overload
def window_counts(
    cust: np.ndarray,
    ts: np.ndarray,
    group: np.ndarray,
    n: int,
    n_groups: int,
    t_end: int,
    edges_days: Sequence[int],
    weights: None = None,
) -> tuple[np.ndarray, None]: ...
@overload
def window_counts(
    cust: np.ndarray,
    ts: np.ndarray,
    group: np.ndarray,
    n: int,
    n_groups: int,
    t_end: int,
    edges_days: Sequence[int],
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]: ...
def window_counts(
    cust: np.ndarray,
    ts: np.ndarray,
    group: np.ndarray,
    n: int,
    n_groups: int,
    t_end: int,
    edges_days: Sequence[int],
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Counts (and sums of `weights`) per window, group and customer: the behaviour family's kernel.

    Windows are the last e days before `t_end` for each e in `edges_days`: `t_end - e days <= ts <
    t_end`. Rows with `group < 0` or older than the largest window are ignored. Returns `(count,
    total)`, each of shape `(len(edges_days), n_groups, n)` with windows ascending; `total` is None
    without weights. One bincount per output, over bins laid out so that every (window, group) is
    one contiguous row of `n` customers (a feature column is a row, no gather), then the
    buckets are accumulated in place into windows.
    """
    edges = sorted(int(e) for e in edges_days)
    keep = (ts < t_end) & (ts >= t_end - edges[-1] * DAY_NS) & (group >= 0)
    if not keep.all():
        cust, ts, group = cust[keep], ts[keep], group[keep]
        weights = weights[keep] if weights is not None else None
    # bucket = number of inner edges e with ts < t_end - e days (0 = the newest), counted in int8;
    # then the key, in place
    bucket = np.zeros(len(ts), dtype=np.int8)
    for e in edges[:-1]:
        bucket += ts < t_end - e * DAY_NS
    key = bucket.astype(np.int64)
    key *= n_groups
    key += group
    key *= n
    key += cust
    nb, size = len(edges), len(edges) * n_groups * n
    count = np.bincount(key, minlength=size).reshape(nb, n_groups, n)
    total = None if weights is None else np.bincount(key, weights=weights, minlength=size).reshape(nb, n_groups, n)
    for b in range(1, nb):  # buckets -> cumulative windows
        count[b] += count[b - 1]
        if total is not None:
            total[b] += total[b - 1]
    return count, total


def _group_min(keys: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-key minimum of values (NaN where a key has no rows)."""
    out = np.full(n, np.nan)
    if len(keys):
        s = pd.Series(values).groupby(keys, sort=False).min()
        out[s.index.to_numpy()] = s.to_numpy(np.float64)
    return out


def last_at_or_before(dates: np.ndarray, t: int) -> int:
    """Index of the last date <= t in sorted `dates`, or -1."""
    return int(np.searchsorted(dates, t, side="right")) - 1


def _month_index(ns: np.ndarray | int) -> np.ndarray:
    return np.asarray(ns).astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _snapshot_for_month(snapshots: np.ndarray, t_ns: int, months_back: int) -> int | None:
    """The last snapshot <= T whose calendar month is <= (month of T's snapshot) - months_back."""
    i = last_at_or_before(snapshots, t_ns)
    if i < 0:
        return None
    if months_back == 0:
        return int(snapshots[i])
    target = _month_index(snapshots[i]) - months_back
    months = _month_index(snapshots[: i + 1])
    j = int(np.searchsorted(months, target, side="right")) - 1
    return int(snapshots[j]) if j >= 0 else None


def aum_at(prep: Prepared, snapshots: Sequence[int | None]) -> np.ndarray:
    """AUM per customer (rows) at each snapshot (columns); NaN columns for None snapshots."""
    out = np.full((prep.n, len(snapshots)), np.nan)
    wanted = [s for s in snapshots if s is not None]
    if prep.ho is None or not wanted:
        return out
    ho = prep.ho
    uniq = np.unique(np.array(wanted, dtype=np.int64))
    mask = np.isin(ho["snap"], uniq) & ~ho["liab"]
    slot = np.searchsorted(uniq, ho["snap"][mask])
    sums = np.bincount(ho["cust"][mask] * len(uniq) + slot, weights=ho["value"][mask], minlength=prep.n * len(uniq))
    sums = sums.reshape(prep.n, len(uniq))
    for j, s in enumerate(snapshots):
        if s is not None:
            out[:, j] = sums[:, int(np.searchsorted(uniq, s))]
    return out


def tier_of(aum: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Tier names for AUM values (None where AUM is NaN)."""
    t = config.tiers
    tiers = np.where(aum >= t.hnw_min, "hnw", np.where(aum >= t.affluent_min, "affluent", "mass")).astype(object)
    tiers[np.isnan(aum)] = None
    return tiers


def stated_risk_at(prep: Prepared, t_end: int) -> np.ndarray:
    """stated_risk known at T (None if the questionnaire is dated after T)."""
    cu = prep.customers
    risk = cu["stated_risk"].astype(object).to_numpy().copy()
    if "risk_assessed_on" in cu:
        assessed = _ns(cu["risk_assessed_on"])
        nat = assessed == np.iinfo(np.int64).min
        risk[(assessed >= t_end) & ~nat] = None
    risk[pd.isna(risk)] = None
    return risk


def reviewed_risk_at(prep: Prepared, t_end: int) -> np.ndarray:
    """#12: the class of each customer's latest suitability review dated before `t_end` (None if none by T).
    Never a later review: a row at T knows only what the bank knew at T."""
    out = np.full(prep.n, None, dtype=object)
    rv = prep.reviews
    if rv is None:
        return out
    m = rv["ts"] < t_end
    cust, ts, risk = rv["cust"][m], rv["ts"][m], rv["risk"][m]
    order = np.lexsort((ts, cust))
    last = order[np.r_[cust[order][1:] != cust[order][:-1], True]] if len(order) else order
    out[cust[last]] = np.asarray(vocab.RISK_CLASSES, dtype=object)[risk[last]]
    return out


# --------------------------------------------------------------------------- families


def _transaction_features(prep: Prepared, t_end: int, config: FeatureConfig, weekly_returns: np.ndarray | None):
    n, tx = prep.n, prep.tx
    assert tx is not None  # the caller computes this family only when transactions are present
    cols: dict[str, np.ndarray] = {}
    lookback = max(config.recency_lookback_days, 7 * N_WEEKS)
    m = (tx["ts"] < t_end) & (tx["ts"] >= t_end - lookback * DAY_NS)
    cust, ts, amount = tx["cust"][m].astype(np.int64), tx["ts"][m], tx["amount"][m]
    d, cat, cp, ch, dirn = (t_end - 1 - ts) // DAY_NS, tx["cat"][m], tx["cp"][m], tx["ch"][m], tx["dir"][m]
    # counts and sums per (window, direction x category) and (window, direction x counterparty);
    # the extra last slot keeps rows with an unknown category/counterparty in the totals
    nc, np_ = N_CAT + 1, N_CP + 1
    win = {int(e): i for i, e in enumerate(CUBE_WINDOWS)}  # window -> index along the first axis
    dir32 = dirn.astype(np.int32)
    cnt_cat, amt_cat = window_counts(
        cust, ts, dir32 * nc + np.where(cat < 0, N_CAT, cat), n, N_DIR * nc, t_end, CUBE_WINDOWS, amount
    )
    cnt_cp, amt_cp = window_counts(
        cust, ts, dir32 * np_ + np.where(cp < 0, N_CP, cp), n, N_DIR * np_, t_end, CUBE_WINDOWS, amount
    )
    cnt_cat = cnt_cat.astype(np.float64).reshape(-1, N_DIR, nc, n)  # window, direction, category, customer
    amt_cat = amt_cat.reshape(-1, N_DIR, nc, n)
    cnt_cp = cnt_cp.astype(np.float64).reshape(-1, N_DIR, np_, n)
    amt_cp = amt_cp.reshape(-1, N_DIR, np_, n)
    cum_cnt, cum_amt = cnt_cat.sum(axis=2), amt_cat.sum(axis=2)  # window, direction, customer

    d_in, d_out = vocab.DIRECTIONS.index("in"), vocab.DIRECTIONS.index("out")
    for w in registry.WINDOWS:
        cols[windowed("txn_count", w)] = cum_cnt[win[w]].sum(axis=0)
        inflow = cols[windowed("inflow_total", w)] = cum_amt[win[w], d_in]
        outflow = cols[windowed("outflow_total", w)] = cum_amt[win[w], d_out]
        cols[windowed("net_flow", w)] = inflow - outflow
    for direction, category, windows in registry.CATEGORY_FLOWS:
        di, ci = vocab.DIRECTIONS.index(direction), CATEGORIES.index(category)
        for w in windows:
            cols[registry.flow(direction, category, w)] = amt_cat[win[w], di, ci]
    ib = CATEGORIES.index("investment_buy")
    for w in registry.WINDOWS:
        cols[windowed("count_investment_buy", w)] = cnt_cat[win[w], :, ib].sum(axis=0)
    for direction, counterparty, windows in registry.COUNTERPARTY_FLOWS:
        di, pi = vocab.DIRECTIONS.index(direction), COUNTERPARTIES.index(counterparty)
        for w in windows:
            cols[registry.flow(direction, counterparty, w)] = amt_cp[win[w], di, pi]
    br = COUNTERPARTIES.index("brokerage")
    for w in registry.WINDOWS:
        cols[windowed("count_outflow_brokerage", w)] = cnt_cp[win[w], d_out, br]
    # channels over 90 days
    in90 = d < 90
    ch_cnt = np.bincount(
        cust[in90] * (N_CH + 1) + np.where(ch[in90] < 0, N_CH, ch[in90]), minlength=n * (N_CH + 1)
    ).reshape(n, N_CH + 1)
    digital = ch_cnt[:, CHANNELS.index("mobile")] + ch_cnt[:, CHANNELS.index("web")]
    cols["digital_txn_share_90d"] = ratio(digital, ch_cnt.sum(axis=1))
    cols["advisor_txn_count_90d"] = ch_cnt[:, CHANNELS.index("advisor")].astype(np.float64)
    cols["branch_txn_count_90d"] = ch_cnt[:, CHANNELS.index("branch")].astype(np.float64)
    # trends: recent window / prior window of the same length
    prior = {30: lambda c: c[1] - c[0], 90: lambda c: c[3] - c[2]}  # c: window, customer
    recent = {30: lambda c: c[0], 90: lambda c: c[2]}
    series = {
        "txn_count": cum_cnt.sum(axis=1),
        "inflow_total": cum_amt[:, d_in],
        "outflow_total": cum_amt[:, d_out],
        "outflow_card_spend": amt_cat[:, d_out, CATEGORIES.index("card_spend")],
        "outflow_investment_buy": amt_cat[:, d_out, ib],
        "outflow_brokerage": amt_cp[:, d_out, br],
    }
    for name, w in registry.TRANSACTION_TRENDS:
        c = series[name]
        cols[registry.trend(name, w)] = ratio(recent[w](c), prior[w](c))
    # recency (within the lookback)
    rec = d < config.recency_lookback_days
    df = d.astype(np.float64)
    salary = (cat == CATEGORIES.index("salary")) & (dirn == d_in)
    brokerage_out = (cp == br) & (dirn == d_out)
    last_of = {
        "txn": rec,
        "salary": rec & salary,
        "investment_buy": rec & (cat == ib),
        "brokerage_transfer": rec & brokerage_out,
        "overseas_transfer": rec & (cp == COUNTERPARTIES.index("overseas")) & (dirn == d_out),
    }
    for name in registry.TRANSACTION_RECENCY:
        mask = last_of[name]
        cols[registry.days_since_last(name)] = _group_min(cust[mask], df[mask], n)
    # salary regularity
    t_month = int(_month_index(t_end - 1))
    sal_month = t_month - _month_index(ts[salary])
    in6 = sal_month < 6
    pairs = np.unique(cust[salary][in6] * 6 + sal_month[in6])
    cols["salary_months_6m"] = np.bincount(pairs // 6, minlength=n).astype(np.float64)
    s180 = salary & (d < 180)
    k = np.bincount(cust[s180], minlength=n).astype(np.float64)
    s1 = np.bincount(cust[s180], weights=amount[s180], minlength=n)
    s2 = np.bincount(cust[s180], weights=amount[s180] ** 2, minlength=n)
    var = np.clip(ratio(s2 - ratio(s1**2, k), k - 1), 0, None)
    cv = ratio(np.sqrt(var), ratio(s1, k))
    cv[k < 2] = np.nan
    cols["salary_amount_cv_180d"] = cv
    # response to market moves
    names = (
        "invest_count_up_weeks_180d",
        "invest_count_down_weeks_180d",
        "invest_up_down_ratio_180d",
        "invest_index_corr_180d",
    )
    if weekly_returns is None:
        cols.update({k_: np.full(n, np.nan) for k_ in names})
    else:
        invest = ((cat == ib) | brokerage_out) & (d < 7 * N_WEEKS)
        wk = d[invest] // 7
        wcount = np.bincount(cust[invest] * N_WEEKS + wk, minlength=n * N_WEEKS).reshape(n, N_WEEKS)
        wamount = np.bincount(cust[invest] * N_WEEKS + wk, weights=amount[invest], minlength=n * N_WEEKS).reshape(
            n, N_WEEKS
        )
        up_mean, down_mean = _up_down_means(wcount.astype(np.float64), weekly_returns)
        cols["invest_count_up_weeks_180d"] = up_mean
        cols["invest_count_down_weeks_180d"] = down_mean
        cols["invest_up_down_ratio_180d"] = ratio(up_mean, down_mean)
        cols["invest_index_corr_180d"] = _row_corr(wamount, weekly_returns)
    return cols


def _up_down_means(weekly: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = weekly.shape[0]
    up, down = returns > 0, returns < 0
    up_mean = weekly[:, up].mean(axis=1) if up.any() else np.full(n, np.nan)
    down_mean = weekly[:, down].mean(axis=1) if down.any() else np.full(n, np.nan)
    return up_mean, down_mean


def _row_corr(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row with `vector` over the finite entries of `vector`."""
    ok = np.isfinite(vector)
    if ok.sum() < 3:
        return np.full(matrix.shape[0], np.nan)
    x = matrix[:, ok].astype(np.float64)
    v = vector[ok] - vector[ok].mean()
    xc = x - x.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1)) * np.sqrt((v**2).sum())
    # guard against float noise on constant rows
    den[np.sqrt((xc**2).sum(axis=1)) < 1e-9 * (np.abs(x).max(axis=1) + 1)] = 0
    return np.clip(ratio(xc @ v, den), -1.0, 1.0)


def _event_features(prep: Prepared, t_end: int, config: FeatureConfig, weekly_returns: np.ndarray | None):
    n, ev = prep.n, prep.ev
    assert ev is not None  # the caller computes this family only when events are present
    cols: dict[str, np.ndarray] = {}
    lookback = max(config.recency_lookback_days, 7 * N_WEEKS)
    m = (ev["ts"] < t_end) & (ev["ts"] >= t_end - lookback * DAY_NS)
    cust, d = ev["cust"][m].astype(np.int64), (t_end - 1 - ev["ts"][m]) // DAY_NS
    et, tp = ev["type"][m], ev["topic"][m]
    tp = np.where(tp < 0, N_TOPIC - 1, tp)
    group = et.astype(np.int32) * N_TOPIC + tp
    count, _ = window_counts(cust, ev["ts"][m], group, n, N_ETYPE * N_TOPIC, t_end, CUBE_WINDOWS)
    cum = count.astype(np.float64).reshape(-1, N_ETYPE, N_TOPIC, n)  # window, event type, topic, customer
    win = {int(e): i for i, e in enumerate(CUBE_WINDOWS)}
    login, view, search = (EVENT_TYPES.index(x) for x in ("login", "view", "search"))
    logins = cum[:, login].sum(axis=1)  # window, customer
    for w in registry.WINDOWS:
        cols[windowed("login_count", w)] = logins[win[w]]
    is_login = et == login
    recent_login = is_login & (d < 30)
    pairs = np.unique(cust[recent_login] * 30 + d[recent_login])
    cols["login_days_30d"] = np.bincount(pairs // 30, minlength=n).astype(np.float64)
    rec = is_login & (d < config.recency_lookback_days)
    cols["days_since_last_login"] = _group_min(cust[rec], d[rec].astype(np.float64), n)
    cols[registry.trend("login_count", 30)] = ratio(logins[0], logins[1] - logins[0])
    cols[registry.trend("login_count", 90)] = ratio(logins[2], logins[3] - logins[2])
    cols["view_count_90d"] = cum[win[90], view].sum(axis=0)
    cols["search_count_90d"] = cum[win[90], search].sum(axis=0)
    topic_cum = cum[:, view] + cum[:, search]  # window, topic, customer
    for ti, topic in enumerate(TOPICS):
        for w in (30, 90):
            cols[registry.topic_views(topic, w)] = topic_cum[win[w], ti]
    eq = topic_cum[:, TOPICS.index("equity_funds")]
    cols[registry.trend("views_equity_funds", 30)] = ratio(eq[0], eq[1] - eq[0])
    cols[registry.trend("views_equity_funds", 90)] = ratio(eq[2], eq[3] - eq[2])
    cols["equity_funds_view_share_90d"] = ratio(eq[2], topic_cum[2, : N_TOPIC - 1].sum(axis=0))
    if weekly_returns is None:
        cols["equity_views_index_corr_180d"] = np.full(n, np.nan)
    else:
        sel = (et != login) & (tp == TOPICS.index("equity_funds")) & (d < 7 * N_WEEKS)
        weekly = np.bincount(cust[sel] * N_WEEKS + d[sel] // 7, minlength=n * N_WEEKS).reshape(n, N_WEEKS)
        cols["equity_views_index_corr_180d"] = _row_corr(weekly, weekly_returns)
    return cols


def _long_window_features(prep: Prepared, t_end: int) -> dict[str, np.ndarray]:
    """Rare investment signals over 180 and `registry.LONG_WINDOW_DAYS` days, and their rates per (1 + logins).

    The same counting kernel as the other behaviour families (`window_counts`), over the windows
    (180, long) and only the rows that can count (the cubes above stop at 180 days). A rate needs
    both of its tables; without one it stays NaN.
    """
    n, w = prep.n, registry.LONG_WINDOW_DAYS
    windows = (180, w)
    cols: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}  # name -> (window, customer): counts over 180 days and the long window

    if prep.tx is not None:
        tx = prep.tx
        cat, cp = tx["cat"], tx["cp"]
        # the rare rows first (cheap), then the time window on those only
        idx = np.flatnonzero((cp == COUNTERPARTIES.index("brokerage")) | (cat == CATEGORIES.index("investment_buy")))
        ts = tx["ts"][idx]
        idx = idx[(ts < t_end) & (ts >= t_end - w * DAY_NS)]
        cust, ts = tx["cust"][idx], tx["ts"][idx]
        brk = (cp[idx] == COUNTERPARTIES.index("brokerage")) & (tx["dir"][idx] == vocab.DIRECTIONS.index("out"))
        buy = cat[idx] == CATEGORIES.index("investment_buy")  # a row may be both: two counts
        for name, rows in (("brokerage", brk), ("buys", buy)):
            count, _ = window_counts(cust, ts, np.where(rows, 0, -1), n, 1, t_end, windows)
            counts[name] = count[:, 0].astype(np.float64)
        cols[windowed("count_outflow_brokerage", w)] = counts["brokerage"][1]
        cols[windowed("outflow_brokerage", w)] = np.bincount(cust[brk], weights=tx["amount"][idx][brk], minlength=n)
        cols[windowed("count_investment_buy", w)] = counts["buys"][1]
    if prep.ev is not None:
        ev = prep.ev
        idx = np.flatnonzero((ev["ts"] < t_end) & (ev["ts"] >= t_end - w * DAY_NS))
        topic = ev["topic"][idx]
        # kind 0 login, 1 equity_funds view/search, 2 other topic, 3 other
        kind = np.where(
            ev["type"][idx] == EVENT_TYPES.index("login"),
            0,
            np.where(topic == TOPICS.index("equity_funds"), 1, np.where(topic >= 0, 2, 3)),
        )
        count, _ = window_counts(ev["cust"][idx], ev["ts"][idx], kind, n, 4, t_end, windows)
        count = count.astype(np.float64)  # window, kind, customer
        counts["logins"], counts["equity"] = count[:, 0], count[:, 1]
        topical = count[:, 1] + count[:, 2]
        cols[windowed("login_count", w)] = counts["logins"][1]
        for i, lw in enumerate(windows):
            cols[registry.topic_views("equity_funds", lw)] = counts["equity"][i]
            cols[windowed("equity_funds_view_share", lw)] = ratio(counts["equity"][i], topical[i])
    if "logins" in counts:
        for i, lw in enumerate(windows):
            den = 1.0 + counts["logins"][i]
            cols[windowed("equity_views_per_login", lw)] = counts["equity"][i] / den
            if "brokerage" in counts:
                cols[windowed("brokerage_transfers_per_login", lw)] = counts["brokerage"][i] / den
                cols[windowed("investment_buys_per_login", lw)] = counts["buys"][i] / den
                interest = counts["brokerage"][i] + counts["equity"][i]
                cols[windowed("invest_interest_per_login", lw)] = interest / den
    return cols


def _holdings_features(prep: Prepared, t_end: int, config: FeatureConfig, stated_max: np.ndarray):
    n, ho = prep.n, prep.ho
    assert ho is not None  # the caller computes this family only when holdings are present
    cols: dict[str, np.ndarray] = {}
    t_ns = t_end - 1  # snapshot_date on or before the calendar day T
    snaps = [_snapshot_for_month(prep.snapshot_dates, t_ns, k) for k in range(7)]
    s_t = snaps[0]
    names = registry.features_of_family("holdings")
    if s_t is None:
        return {k: np.full(n, np.nan) for k in names}, s_t
    at = ho["snap"] == s_t
    cust, value, liab, risk, fam = ho["cust"][at], ho["value"][at], ho["liab"][at], ho["risk"][at], ho["family"][at]
    asset = ~liab
    aum = np.bincount(cust[asset], weights=value[asset], minlength=n)
    cols["aum"] = aum
    by_risk = np.bincount(cust[asset] * 6 + risk[asset], weights=value[asset], minlength=n * 6).reshape(n, 6)
    for level, name in enumerate(vocab.RISK_LEVELS, start=1):
        cols[registry.aum_in_risk_level(name)] = by_risk[:, level]
    cols["aum_high_risk_share"] = ratio(by_risk[:, 4] + by_risk[:, 5], aum)
    famc = np.where(fam < 0, len(FAMILY_CODES), fam)
    by_fam = np.bincount(cust * 5 + famc, weights=np.where(liab, 0.0, value), minlength=n * 5).reshape(n, 5)
    for family in ("deposit", "fund", "insurance"):
        cols[registry.aum_in_family(family)] = by_fam[:, FAMILY_CODES[family]]
    cols["deposit_share"] = ratio(cols[registry.aum_in_family("deposit")], aum)
    cols["liabilities"] = np.bincount(cust[liab], weights=value[liab], minlength=n)
    mort = ho["mortgage"][at]
    cols["mortgage_balance"] = np.bincount(cust[mort], weights=value[mort], minlength=n)
    sq = np.bincount(cust[asset], weights=value[asset] ** 2, minlength=n)
    cols["aum_hhi"] = ratio(sq, aum**2)
    cols["product_count"] = np.bincount(cust, minlength=n).astype(np.float64)
    held = np.bincount(cust * 5 + famc, minlength=n * 5).reshape(n, 5)[:, : len(FAMILY_CODES)] > 0
    cols["product_family_count"] = held.sum(axis=1).astype(np.float64)
    pos = asset & (value > 0)
    levels = np.bincount(cust[pos] * 6 + risk[pos], minlength=n * 6).reshape(n, 6) > 0
    cols["max_risk_level_held"] = np.where(levels.any(axis=1), 5 - np.argmax(levels[:, ::-1], axis=1), 0).astype(float)
    above = np.zeros(n)
    for level in range(2, 6):  # value in `level` counts when level > the stated maximum
        above += np.where(stated_max < level, by_risk[:, level], 0.0)
    share = ratio(above, aum)
    share[stated_max == 0] = np.nan  # risk unknown at T
    cols["aum_share_above_suitability"] = share
    history = aum_at(prep, snaps)
    for months in (1, 3, 6):
        cols[registry.monthly("aum_change", months)] = ratio(aum, history[:, months]) - 1
    peak = np.nanmax(np.where(np.isnan(history), -np.inf, history), axis=1)
    cols["aum_drawdown_6m"] = ratio(aum, peak) - 1
    return cols, s_t


def _market_context(prep: Prepared, t_end: int, config: FeatureConfig):
    """Market features at T and the 26 weekly index returns ending at T (week 0 = the 7 days to T)."""
    names = registry.features_of_family("market")
    if prep.market is None or len(prep.market["date"]) == 0:
        return {k: None for k in names}, None
    mk = prep.market
    t_ns = t_end - 1  # market dates on or before the calendar day T
    i_t = last_at_or_before(mk["date"], t_ns)
    if i_t < 0:
        return {k: None for k in names}, None
    t = pd.Timestamp(t_ns)

    def first_known(date: pd.Timestamp) -> bool:
        # a value from before the market data starts is unknown, not the first value
        return date.value >= mk["date"][0]

    def at(date: pd.Timestamp, col: str) -> float:
        i = last_at_or_before(mk["date"], date.value)
        return float(mk[col][i]) if i >= 0 else np.nan

    idx_t, rate_t = mk["index"][i_t], mk["rate"][i_t]
    out: dict[str, float | str | None] = {}
    for months in (1, 3, 6):
        past = t - pd.DateOffset(months=months)
        out[registry.monthly("index_return", months)] = idx_t / at(past, "index") - 1 if first_known(past) else np.nan
    lo3 = (t - pd.DateOffset(months=3)).value
    win = mk["index"][(mk["date"] > lo3) & (mk["date"] <= t_ns)]
    out["index_volatility_3m"] = float(np.std(np.diff(np.log(win)), ddof=1) * np.sqrt(252)) if len(win) > 2 else np.nan
    lo6 = (t - pd.DateOffset(months=6)).value
    win6 = mk["index"][(mk["date"] >= lo6) & (mk["date"] <= t_ns)]
    out["index_drawdown_6m"] = float(idx_t / win6.max() - 1) if first_known(t - pd.DateOffset(months=6)) else np.nan
    out["deposit_rate_1y"] = float(rate_t)
    for months in (3, 6):
        past = t - pd.DateOffset(months=months)
        out[registry.monthly("deposit_rate_change", months)] = (
            rate_t - at(past, "rate") if first_known(past) else np.nan
        )
    r6 = out[registry.monthly("index_return", 6)]
    assert not isinstance(r6, str)  # index_return is numeric (or NaN), only market_regime is a string
    if r6 is None or np.isnan(r6):
        out["market_regime"] = None
    else:
        out["market_regime"] = (
            "bull" if r6 >= config.bull_return_6m else "bear" if r6 <= config.bear_return_6m else "sideways"
        )
    # weekly returns: week k covers days (T - 7(k+1), T - 7k]
    ends = t_ns - 7 * DAY_NS * np.arange(N_WEEKS + 1)
    pos = np.searchsorted(mk["date"], ends, side="right") - 1
    level = np.where(pos >= 0, mk["index"][np.maximum(pos, 0)], np.nan)
    level[ends < mk["date"][0]] = np.nan
    weekly = level[:-1] / level[1:] - 1
    return out, weekly


def _profile_features(prep: Prepared, t_end: int):
    cu = prep.customers
    t_ns = t_end - DAY_NS
    cols: dict[str, np.ndarray] = {}
    year_ns = 365.25 * DAY_NS
    cols["age"] = (t_ns - _ns(cu["birth_date"])) / year_ns
    cols["tenure_years"] = (t_ns - _ns(cu["onboard_date"])) / year_ns
    for name in ("occupation", "region", "income_band"):
        v = cu[name].astype(object).to_numpy().copy()
        v[pd.isna(v)] = None
        cols[name] = v
    for name in ("is_business_owner", "payroll_at_bank"):
        cols[name] = cu[name].fillna(False).to_numpy(bool)
    risk = stated_risk_at(prep, t_end)
    cols["stated_risk"] = risk
    assessed = _ns(cu["risk_assessed_on"]) if "risk_assessed_on" in cu else np.full(prep.n, np.iinfo(np.int64).min)
    age_days = ((t_ns - assessed) // DAY_NS).astype(np.float64)
    age_days[(assessed == np.iinfo(np.int64).min) | (assessed >= t_end)] = np.nan
    cols["stated_risk_age_days"] = age_days
    age = cols["age"]
    stage = np.select([age < 35, age < 60], ["young_professional", "family_growth"], "retirement").astype(object)
    stage[cu["occupation"].astype(object).to_numpy() == "retired"] = "retirement"
    stage[np.isnan(age)] = None
    cols["lifecycle_stage"] = stage
    return cols


def feature_columns(prep: Prepared, as_of, config: FeatureConfig | None = None) -> tuple[dict, np.ndarray]:
    """Every feature the builder computes at `as_of`, by name, for every customer in `prep` (a
    value per customer), and the mask of active customers.

    Which columns exist depends on which raw tables are present; the names are the registry's
    (`check_columns` holds the two to each other on every build).
    """
    config = config or FeatureConfig()
    as_of = pd.Timestamp(as_of).normalize()
    t_end = (as_of + pd.Timedelta(days=1)).value
    n = prep.n
    market, weekly_returns = _market_context(prep, t_end, config)
    cols: dict[str, np.ndarray] = {}
    cols.update(_profile_features(prep, t_end))
    stated = cols["stated_risk"]
    stated_max = np.array([RISK_MAX_LEVEL.get(r, 0) if r is not None else 0 for r in stated], dtype=np.int8)
    snap_t = None
    if prep.tx is not None:
        cols.update(_transaction_features(prep, t_end, config, weekly_returns))
    if prep.ev is not None:
        cols.update(_event_features(prep, t_end, config, weekly_returns))
    if prep.tx is not None or prep.ev is not None:
        cols.update(_long_window_features(prep, t_end))
    if prep.ho is not None:
        hcols, snap_t = _holdings_features(prep, t_end, config, stated_max)
        cols.update(hcols)
    for name, value in market.items():
        cols[name] = (
            np.full(n, np.nan if value is None else value)
            if name != "market_regime"
            else np.full(n, value, dtype=object)
        )
    # segment
    if "aum" in cols:
        aum = cols["aum"]
        cols["tier"] = tier_of(aum, config)
        t = config.tiers
        nxt = np.where(aum >= t.hnw_min, np.nan, np.where(aum >= t.affluent_min, t.hnw_min, t.affluent_min))
        cols["aum_to_next_tier_ratio"] = ratio(aum, nxt)
        families = cols["product_family_count"]
        digital = np.zeros(n, dtype=bool)
        logins, share = windowed("login_count", 90), windowed("digital_txn_share", 90)
        if logins in cols:
            digital |= cols[logins] > 0
        if share in cols:
            digital |= np.nan_to_num(cols[share]) > 0
        payroll = cols["payroll_at_bank"].copy()
        salary = registry.flow("in", "salary", 90)
        if salary in cols:
            payroll |= cols[salary] > 0
        depth = np.where(
            (families >= config.ecosystem_min_families) & digital & payroll,
            "ecosystem",
            np.where(families >= 2, "multi_product", "basic"),
        ).astype(object)
        depth[np.isnan(families)] = None
        cols["relationship_depth"] = depth

    check_columns(cols, prep)
    return cols, active_mask(prep, t_end, snap_t)


def check_columns(cols: Mapping[str, object], prep: Prepared) -> None:
    """The builder computed exactly the registry's features that its present tables allow.

    A name spelled differently on the two sides would otherwise leave a declared column all NaN
    in silence; this is a programming error, so it raises `RuntimeError` naming the columns.
    """
    declared = {f.name for f in registry.FEATURES}
    undeclared = sorted(set(cols) - declared)
    missing_tables = set(prep.missing_tables)
    uncomputed = sorted(
        f.name for f in registry.FEATURES if f.name not in cols and not (set(f.sources) & missing_tables)
    )
    if undeclared or uncomputed:
        raise RuntimeError(
            f"features.build and features.registry disagree: computed but not declared {undeclared}; "
            f"declared (all source tables present) but not computed {uncomputed}"
        )


def features_at(prep: Prepared, as_of, config: FeatureConfig | None = None) -> pd.DataFrame:
    """Features of the active customers in `prep` at `as_of` (see module docstring), in registry order."""
    as_of = pd.Timestamp(as_of).normalize()
    cols, active = feature_columns(prep, as_of, config)
    n_active = int(active.sum())
    data: dict[str, np.ndarray] = {
        "customer_id": prep.customer_ids[active],
        "as_of": np.full(n_active, as_of.to_datetime64(), dtype="datetime64[ns]"),
    }
    for feat in registry.FEATURES:
        values = cols.get(feat.name)
        if feat.dtype == "category":
            data[feat.name] = (
                np.asarray(values, dtype=object)[active]
                if values is not None
                else np.full(n_active, None, dtype=object)
            )
        elif feat.dtype == "bool":
            data[feat.name] = np.asarray(values, dtype=bool)[active]
        elif values is None:
            data[feat.name] = np.full(n_active, np.nan)
        else:
            col = np.asarray(values, dtype=np.float64)[active]
            if feat.lower is not None or feat.upper is not None:
                col = np.clip(col, feat.lower, feat.upper)  # bounds hold by construction; this trims float noise
            data[feat.name] = col
    return pd.DataFrame(data)


def active_mask(prep: Prepared, t_end: int, snap_t: int | None) -> np.ndarray:
    """Onboarded on or before T and holding a product at T's snapshot or active in the 180 days up to T."""
    onboarded = _ns(prep.customers["onboard_date"]) < t_end
    if prep.tx is None and prep.ev is None and prep.ho is None:
        return onboarded
    active = np.zeros(prep.n, dtype=bool)
    lo = t_end - 180 * DAY_NS
    for table in (prep.tx, prep.ev):
        if table is not None:
            m = (table["ts"] < t_end) & (table["ts"] >= lo)
            active[table["cust"][m]] = True
    if prep.ho is not None and snap_t is not None:
        active[prep.ho["cust"][prep.ho["snap"] == snap_t]] = True
    return onboarded & active


def build_features(
    tables: Mapping[str, pd.DataFrame | None], as_of, config: FeatureConfig | None = None
) -> pd.DataFrame:
    """Features at `as_of` for the customers in `tables` (raw frames; missing tables -> NaN features).

    Returns `customer_id`, `as_of` and every registry feature in registry order, one row per
    active customer.
    """
    return features_at(prepare(tables), as_of, config)
