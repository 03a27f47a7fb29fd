"""The simulator is honest: the shares DESIGN §4 promises, the signals it plants, and reproducibility."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clientlens.cli import app
from features import simulate as sim
from features.contract import read_raw, read_truth

N_CUSTOMERS, N_MONTHS, SEED = 20_000, 12, 11  # seed 11: 7 bull and 5 bear months


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A bank large enough for shares to be measured to about +-0.1 percentage point."""
    out = tmp_path_factory.mktemp("bank")
    rows = sim.simulate(out, N_CUSTOMERS, N_MONTHS, SEED, chunk_size=10_000)
    frames = read_raw(out)  # every table passes the contract, or this raises
    truth = read_truth(out).set_index("customer_id")
    market = sim.simulate_market(SEED, N_MONTHS)
    return {"out": out, "rows": rows, "frames": frames, "truth": truth, "market": market}


def _month(ts: pd.Series, market: sim.Market) -> np.ndarray:
    return np.searchsorted(market.month_starts, ts.to_numpy(), side="right") - 1


def _per_customer_month(df: pd.DataFrame, market: sim.Market, n_customers: int) -> np.ndarray:
    """Row counts as a customers x months matrix (customer ids are 1..n)."""
    m = _month(df["ts"], market)
    out = np.zeros((n_customers, market.months))
    np.add.at(out, (df["customer_id"].to_numpy() - 1, m), 1)
    return out


def _churn_month(truth: pd.DataFrame, market: sim.Market) -> np.ndarray:
    m = np.full(len(truth), market.months)
    has = truth["churn_date"].notna().to_numpy()
    m[has] = _month(truth["churn_date"][has], market)
    return m


def _aum_matrix(holdings: pd.DataFrame, market: sim.Market, n_customers: int) -> np.ndarray:
    assets = holdings[~holdings["is_liability"]]
    m = _month(assets["snapshot_date"], market)
    out = np.zeros((n_customers, market.months))
    np.add.at(out, (assets["customer_id"].to_numpy() - 1, m), assets["market_value"].to_numpy())
    return out


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) identity, ties averaged."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = y.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# ---------------------------------------------------------------- shares


def test_row_counts_are_realistic(bank):
    rows = bank["rows"]
    cm = N_CUSTOMERS * N_MONTHS
    assert rows["customers"] == rows["truth"] == N_CUSTOMERS
    assert 10 < rows["transactions"] / cm < 30  # 100k x 24 months -> tens of millions of rows
    assert 4 < rows["events"] / cm < 15
    assert 2 < rows["holdings"] / cm < 8
    assert rows["market"] == len(pd.bdate_range("2024-01-01", "2024-12-31"))
    # what the file says is what was counted
    for table, n in rows.items():
        assert pq.ParquetFile(bank["out"] / f"{table}.parquet").metadata.num_rows == n


def test_tier_shares_by_bank_aum(bank):
    h = bank["frames"]["holdings"]
    last = h[(h["snapshot_date"] == h["snapshot_date"].max()) & ~h["is_liability"]]
    aum = last.groupby("customer_id")["market_value"].sum()
    active = bank["truth"].index[bank["truth"]["churn_date"].isna()]
    aum = aum.reindex(active, fill_value=0.0)
    hnw = (aum >= 10_000_000).mean()
    affluent = ((aum >= 500_000) & (aum < 10_000_000)).mean()
    assert 0.005 <= hnw <= 0.01, hnw
    assert 0.08 <= affluent <= 0.12, affluent
    # wallet share: bank AUM is not wealth
    wealth = bank["truth"].loc[active, "wealth"]
    assert (aum < 0.9 * wealth).mean() > 0.5


def test_monthly_churn_between_half_and_two_percent(bank):
    churn_m = _churn_month(bank["truth"], bank["market"])
    for m in range(1, N_MONTHS):  # month 0 has no churn by design (every churner has history)
        at_risk = (churn_m >= m).sum()
        rate = (churn_m == m).sum() / at_risk
        assert 0.005 <= rate <= 0.02, (m, rate)


def test_conservative_rated_customers_hide_aggressive_ones(bank):
    stated = bank["frames"]["customers"].set_index("customer_id")["stated_risk"]
    latent = bank["truth"]["latent_risk"]
    conservative = stated == "conservative"
    share = (latent[conservative] == "aggressive").mean()
    assert 0.10 <= share <= 0.25, share
    assert bank["truth"]["hidden_aggressive"].sum() == (conservative & (latent == "aggressive")).sum()
    # questionnaires lean conservative
    assert (stated == "conservative").mean() > (latent == "conservative").mean()


def test_suitability_no_holding_above_stated_profile(bank):
    h = bank["frames"]["holdings"]
    stated = bank["frames"]["customers"].set_index("customer_id")["stated_risk"]
    allowed = stated.map(lambda r: int(sim.vocab.MAX_RISK_LEVEL_FOR[r][1])).astype(int)
    level = h["risk_level"].astype(str).str[1].astype(int)
    assert (level.to_numpy() <= allowed.reindex(h["customer_id"]).to_numpy()).all()


# ---------------------------------------------------------------- planted signals


def test_churners_fade_before_they_leave(bank):
    n, market = N_CUSTOMERS, bank["market"]
    ev = bank["frames"]["events"]
    logins = _per_customer_month(ev[ev["event_type"] == "login"], market, n)
    aum = _aum_matrix(bank["frames"]["holdings"], market, n)
    churn_m = _churn_month(bank["truth"], market)
    churners = np.flatnonzero((churn_m >= 6) & (churn_m < N_MONTHS))
    stayers = np.flatnonzero(churn_m == N_MONTHS)
    assert len(churners) > 300

    def ratio(values, who, late, early):
        return values[who, late].sum() / values[who, early].sum()

    c = churn_m[churners]
    for values in (logins, aum):
        late = values[churners[:, None], c[:, None] - np.array([1, 2, 3])[None, :]].sum()  # 1-3 months before
        early = values[churners[:, None], c[:, None] - np.array([4, 5, 6])[None, :]].sum()  # 4-6 months before
        churner_ratio = late / early
        # stayers over the same calendar months as each churner (matched by drawing churner months)
        rng = np.random.default_rng(0)
        pick = rng.choice(stayers, len(churners))
        s_late = values[pick[:, None], c[:, None] - np.array([1, 2, 3])[None, :]].sum()
        s_early = values[pick[:, None], c[:, None] - np.array([4, 5, 6])[None, :]].sum()
        stayer_ratio = s_late / s_early
        assert churner_ratio < 0.8 * stayer_ratio, (churner_ratio, stayer_ratio)
        assert 0.8 < stayer_ratio < 1.25
    # after leaving: balances ~0 and no activity
    after = churn_m < N_MONTHS - 1
    idx = np.flatnonzero(after)
    assert np.all(aum[idx, churn_m[idx] + 1] < 100)
    assert logins[idx, churn_m[idx] + 1].sum() == 0


def test_life_events_that_move_the_money_raise_churn_and_are_its_recorded_cause(bank):
    """#12: a home purchase or a child's study abroad lifts the churn hazard in the event month and the
    three after; those churners are recorded with cause `life_event`, and only those."""
    n, market, truth = N_CUSTOMERS, bank["market"], bank["truth"]
    event_m = np.full(n, -99)
    has = truth["life_event_date"].notna().to_numpy()
    event_m[has] = _month(truth["life_event_date"][has], market)
    churn_m = _churn_month(truth, market)
    moving = truth["life_event"].isin(["home_purchase", "child_study_abroad"]).to_numpy()
    left_soon = (churn_m >= event_m) & (churn_m <= event_m + 3) & (churn_m < N_MONTHS)
    cause = truth["churn_cause"].astype(object).to_numpy()
    life = cause == "life_event"
    assert life.sum() >= 30, life.sum()
    assert np.all(moving[life] & left_soon[life])  # the cause is only ever a moving event just before leaving
    # four months at a lifted hazard: those customers leave far more often in that window than others do
    eligible = moving & (event_m >= 1) & (event_m <= N_MONTHS - 4) & (churn_m >= event_m)
    rate_moving = left_soon[eligible].mean()
    others = ~has & (churn_m >= 6)
    rate_others = ((churn_m >= 6) & (churn_m <= 9))[others].mean()
    assert rate_moving > 3 * rate_others, (rate_moving, rate_others)


def test_churners_move_money_out_before_leaving(bank):
    n, market = N_CUSTOMERS, bank["market"]
    tx = bank["frames"]["transactions"]
    ext = _per_customer_month(tx[(tx["counterparty"] == "external_bank") & (tx["direction"] == "out")], market, n)
    churn_m = _churn_month(bank["truth"], market)
    churners = np.flatnonzero((churn_m >= 4) & (churn_m < N_MONTHS))
    stayers = churn_m == N_MONTHS
    before = ext[churners[:, None], churn_m[churners][:, None] - np.array([1, 2, 3])[None, :]].mean()
    assert before > 2.0 * ext[stayers].mean()


def test_aggressive_customers_react_to_bull_markets(bank):
    n, market = N_CUSTOMERS, bank["market"]
    tx, ev = bank["frames"]["transactions"], bank["frames"]["events"]
    trades = _per_customer_month(
        tx[((tx["counterparty"] == "brokerage") & (tx["direction"] == "out")) | (tx["category"] == "investment_buy")],
        market,
        n,
    )
    equity = _per_customer_month(ev[ev["topic"] == "equity_funds"], market, n)
    churn_m = _churn_month(bank["truth"], market)
    active = np.arange(N_MONTHS)[None, :] < churn_m[:, None]
    aggressive = (bank["truth"]["latent_risk"] == "aggressive").to_numpy()
    bull, bear = market.regime == sim.REGIMES.index("bull"), market.regime == sim.REGIMES.index("bear")
    assert bull.any() and bear.any()

    def rate(values, who, months):
        mask = active & who[:, None] & months[None, :]
        return values[mask].mean()

    for values in (trades, equity):
        assert rate(values, aggressive, bull) > 1.5 * rate(values, aggressive, bear)
        # and the reaction is an aggressive trait: conservative customers react less
        conservative = (bank["truth"]["latent_risk"] == "conservative").to_numpy()
        agg_lift = rate(values, aggressive, bull) / rate(values, aggressive, bear)
        con_lift = rate(values, conservative, bull) / rate(values, conservative, bear)
        assert agg_lift > con_lift


def test_hidden_aggressive_signal_is_useful_but_noisy(bank):
    """A naive behaviour score finds hidden-aggressive customers well above chance, not perfectly."""
    n, market = N_CUSTOMERS, bank["market"]
    tx, ev = bank["frames"]["transactions"], bank["frames"]["events"]
    brokerage = _per_customer_month(tx[(tx["counterparty"] == "brokerage") & (tx["direction"] == "out")], market, n)
    equity = _per_customer_month(ev[ev["topic"] == "equity_funds"], market, n)
    logins = _per_customer_month(ev[ev["event_type"] == "login"], market, n)
    score = (brokerage.sum(1) + equity.sum(1)) / (1 + logins.sum(1))
    conservative = (bank["frames"]["customers"]["stated_risk"] == "conservative").to_numpy()
    y = bank["truth"]["hidden_aggressive"].to_numpy()
    auc = _auc(y[conservative], score[conservative])
    assert 0.65 < auc < 0.95, auc


def test_life_events_show_first_as_browsing_then_as_transactions(bank):
    n, market = N_CUSTOMERS, bank["market"]
    truth, tx, ev = bank["truth"], bank["frames"]["transactions"], bank["frames"]["events"]
    event_m = np.full(n, -1)
    has = truth["life_event_date"].notna().to_numpy()
    event_m[has] = _month(truth["life_event_date"][has], market)
    churn_m = _churn_month(truth, market)
    checks = {
        "home_purchase": ("mortgage", tx["product_type"] == "mortgage"),
        "child_study_abroad": ("study_abroad", tx["counterparty"] == "overseas"),
        "retirement": ("pension", tx["product_type"] == "pension"),
    }
    for life_event, (topic, txn_mask) in checks.items():
        who = np.flatnonzero((truth["life_event"] == life_event).to_numpy() & (event_m >= 3) & (churn_m > event_m + 1))
        others = np.flatnonzero(~has & (churn_m == N_MONTHS))
        assert len(who) >= 20, life_event
        views = _per_customer_month(ev[ev["topic"] == topic], market, n)
        txns = _per_customer_month(tx[txn_mask], market, n)
        e = event_m[who]
        browse_before = views[who, e - 1].mean()
        assert browse_before > 3 * views[others, :].mean(), life_event
        # transactions follow the event: more in the event month and after than in the month before
        assert (
            txns[who, e].mean() + txns[who, np.minimum(e + 1, N_MONTHS - 1)].mean() > 2 * txns[who, e - 1].mean() + 0.2
        )


def test_market_regimes_and_falling_rates(bank):
    market = bank["market"]
    frame = bank["frames"]["market"]
    assert frame["date"].dt.dayofweek.max() <= 4  # business days
    r = np.log(market.index_month_end / np.r_[sim.SimParams().index_start, market.index_month_end[:-1]])
    assert r[market.regime == 0].mean() > 0 > r[market.regime == 2].mean()
    rate = frame["deposit_rate_1y"].to_numpy()
    assert rate[-1] < rate[0]


# ---------------------------------------------------------------- reproducibility and files


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a = sim.simulate(tmp_path / "a", 1_500, 5, seed=3, chunk_size=1_000)
    b = sim.simulate(tmp_path / "b", 1_500, 5, seed=3, chunk_size=1_000)
    sim.simulate(tmp_path / "c", 1_500, 5, seed=4, chunk_size=1_000)
    assert a == b
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert set(da) == {f"{t}.parquet" for t in sim.OUTPUT_TABLES}
    assert da == db
    assert all(da[name] != dc[name] for name in da)
    # chunk size changes row groups (and the order between them), never the rows: ordered by customer
    # (stable), both files give the same table
    sim.simulate(tmp_path / "d", 1_500, 5, seed=3, chunk_size=5_000)
    for name in da:
        left = pq.read_table(tmp_path / "a" / name)
        right = pq.read_table(tmp_path / "d" / name)
        if "customer_id" in left.column_names:
            left, right = left.sort_by("customer_id"), right.sort_by("customer_id")
        assert left.equals(right), name
    # per chunk: customers one row group, events (transactions, holdings) one row group per month
    assert pq.ParquetFile(tmp_path / "a" / "customers.parquet").num_row_groups == 2
    assert pq.ParquetFile(tmp_path / "d" / "customers.parquet").num_row_groups == 1
    assert pq.ParquetFile(tmp_path / "a" / "events.parquet").num_row_groups == 2 * 5
    assert pq.ParquetFile(tmp_path / "d" / "events.parquet").num_row_groups == 5


def test_suitability_reviews_have_their_own_stream(tmp_path):
    """#12: the reviews come from their own random stream: without them every other file is byte-identical."""
    sim.simulate(tmp_path / "on", 1_500, 6, seed=5, chunk_size=1_000)
    off = sim.SimParams(review_rate_by_tier=(0.0, 0.0, 0.0))
    sim.simulate(tmp_path / "off", 1_500, 6, seed=5, chunk_size=1_000, params=off)
    on, without = _digest(tmp_path / "on"), _digest(tmp_path / "off")
    assert {k: v for k, v in on.items() if k != "suitability_reviews.parquet"} == {
        k: v for k, v in without.items() if k != "suitability_reviews.parquet"
    }
    assert pq.read_metadata(tmp_path / "on" / "suitability_reviews.parquet").num_rows > 0
    assert pq.read_metadata(tmp_path / "off" / "suitability_reviews.parquet").num_rows == 0


def test_suitability_reviews_are_accurate_unbiased_and_favour_wealthier_customers(bank):
    reviews, truth = bank["frames"]["suitability_reviews"], bank["truth"]
    customers = bank["frames"]["customers"].set_index("customer_id")
    # a few % of customers a year (12 months simulated)
    assert 0.02 < reviews["customer_id"].nunique() / N_CUSTOMERS < 0.10
    code = {c: i for i, c in enumerate(sim.vocab.RISK_CLASSES)}
    reviewed = reviews["reviewed_risk"].astype(str).map(code).to_numpy()
    true = truth.loc[reviews["customer_id"], "latent_risk"].astype(str).map(code).to_numpy()
    stated = customers.loc[reviews["customer_id"], "stated_risk"].astype(str).map(code).to_numpy()
    assert (reviewed == true).mean() > 0.8  # an advisor's assessment: far better than the questionnaire
    assert (stated == true).mean() < 0.6
    assert abs(reviewed.mean() - true.mean()) < 0.05  # no lean, unlike the questionnaire
    assert true.mean() - stated.mean() > 0.3
    # more reviews among wealthier (advised) customers: bank AUM at the start, as the simulator's rate says
    first = pd.Series(truth["wealth"] * truth["wallet_share"])
    rate = pd.Series(0, index=truth.index).add(reviews["customer_id"].value_counts(), fill_value=0)
    rich = first >= sim.SimParams().tier_affluent_min
    assert rate[rich].mean() > 2 * rate[~rich].mean()
    # reviews fall in the simulated window, while the customer is still a customer
    churn = truth.loc[reviews["customer_id"], "churn_date"].to_numpy()
    at = reviews["reviewed_at"].to_numpy()
    assert (at >= bank["market"].month_starts[0]).all() and (at < bank["market"].month_starts[-1]).all()
    assert not (at > churn).any()


def test_row_groups_follow_customer_spans_not_chunks(tmp_path, monkeypatch):
    """Transactions, events, holdings: one row group per (span of ids, month); any chunk size that is a
    multiple of the span writes byte-identical files."""
    monkeypatch.setattr(sim, "ROW_GROUP_CUSTOMERS", 1_000)
    sim.simulate(tmp_path / "a", 3_000, 4, seed=5, chunk_size=1_000)
    sim.simulate(tmp_path / "b", 3_000, 4, seed=5, chunk_size=3_000)
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    for name in ("transactions.parquet", "events.parquet", "holdings.parquet"):
        assert da[name] == db[name], name
        assert pq.ParquetFile(tmp_path / "b" / name).num_row_groups == 3 * 4, name
    assert pq.ParquetFile(tmp_path / "b" / "customers.parquet").num_row_groups == 1


def _sorted_by_customer_then_time(c: np.ndarray, t: np.ndarray) -> bool:
    return bool(np.all((np.diff(c) > 0) | ((np.diff(c) == 0) & (t[1:] >= t[:-1]))))


def test_layout_month_row_groups_sorted_by_customer_then_time(sim_raw):
    """Per customer chunk one row group per calendar month; in a row group rows by customer, then time;
    ordered by customer (stable), a file is ordered by customer then time."""
    for table, time_col in (("transactions", "ts"), ("events", "ts"), ("holdings", "snapshot_date")):
        pf = pq.ParquetFile(sim_raw / f"{table}.parquet")
        assert pf.num_row_groups > 1, table
        chunk_ranges = []
        for g in range(pf.num_row_groups):
            df = pf.read_row_group(g, columns=["customer_id", time_col]).to_pandas()
            c, t = df["customer_id"].to_numpy(), df[time_col].to_numpy()
            assert _sorted_by_customer_then_time(c, t), (table, g)
            months = df[time_col].dt.to_period("M")
            assert months.nunique() == 1, (table, g)
            chunk_ranges.append((c.min(), c.max(), months.iloc[0]))
        # months increase within a chunk; chunks' customer ranges do not overlap
        for (lo0, hi0, m0), (lo1, hi1, m1) in zip(chunk_ranges, chunk_ranges[1:], strict=False):
            assert m1 > m0 or lo1 > hi0, table
        df = pd.read_parquet(sim_raw / f"{table}.parquet", columns=["customer_id", time_col])
        df = df.sort_values("customer_id", kind="stable")
        assert _sorted_by_customer_then_time(df["customer_id"].to_numpy(), df[time_col].to_numpy()), table
    tx = pd.read_parquet(sim_raw / "transactions.parquet", columns=["customer_id", "txn_id"])
    tx = tx.sort_values("customer_id", kind="stable")
    assert tx["txn_id"].is_monotonic_increasing and tx["txn_id"].is_unique


def test_failure_leaves_no_half_written_tables(tmp_path, monkeypatch):
    real = sim.generate_block

    def flaky(block_index, *args, **kwargs):
        if block_index == 1:
            raise RuntimeError("disk on fire")
        return real(block_index, *args, **kwargs)

    monkeypatch.setattr(sim, "generate_block", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sim.simulate(tmp_path / "out", 2_000, 3, seed=1, chunk_size=1_000)
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_simulate_json_summary(tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--customers",
            "1200",
            "--months",
            "3",
            "--seed",
            "5",
            "--out",
            str(out),
            "--start",
            "2025-03-01",
            "--chunk-size",
            "1000",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(summary["out"]) == out.resolve()
    assert summary["rows"]["customers"] == 1200
    assert set(summary["rows"]) == set(sim.OUTPUT_TABLES)
    market = pd.read_parquet(out / "market.parquet")
    assert market["date"].min() == pd.Timestamp("2025-03-03")  # first business day
    assert read_raw(out).rows == {t: n for t, n in summary["rows"].items() if t != "truth"}


def test_cli_simulate_bad_usage_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--customers", "0", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2


def test_churn_cause_is_the_largest_push_term_in_the_churn_month():
    """Hand-built: four churners, one per push term winning in its churn month, one stayer, one `other`."""
    p = sim.SimParams()
    months = 4
    rate_gap = np.array([0.0, 0.0, 1.0, 0.0])  # only month 2 has a competitor gap (0.8 log-lift)
    incidents = np.zeros((6, months))
    incidents[1, 1] = 1.0  # 1.1 log-lift in month 1
    decline = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 0.0])  # 0.6 log-lift, every month
    life = np.zeros((6, months))
    life[0, 3] = p.churn_life_event_coef  # 1.8 log-lift in month 3
    churn_month = np.array([3, 1, 2, 1, months, 1])  # customer 4 stays; customer 5 has no push
    cause = sim._churn_cause(p, rate_gap, incidents, decline, life, churn_month)
    names = [sim.CHURN_CAUSES[c] if c >= 0 else None for c in cause]
    assert names == ["life_event", "service_incidents", "rate_gap", "disengagement", None, "other"]
