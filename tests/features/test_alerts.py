"""Demand alerts: own-history tests, the episode rule, raw-folder scans and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from core.errors import InputError
from features.alerts import AlertConfig, Signal, alerts_from_raw, detect_alerts
from features.contract import validate_frame

START = pd.Timestamp("2024-01-01")


def _events(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    """(customer, day, topic) view events as a contract frame."""
    frame = pd.DataFrame(
        {
            "customer_id": [c for c, _, _ in rows],
            "ts": [pd.Timestamp(d) + pd.Timedelta(hours=12) for _, d, _ in rows],
            "event_type": "view",
            "topic": [t for _, _, t in rows],
        }
    )
    return validate_frame("events", frame)


def _days(first: str, n: int, every: int = 1) -> list[str]:
    return [str((pd.Timestamp(first) + pd.Timedelta(days=i * every)).date()) for i in range(n)]


@pytest.fixture()
def browsing() -> pd.DataFrame:
    quiet_burst = [(1, d, "mortgage") for d in _days("2024-09-02", 4, 2)]  # 4 views in a week, none before
    # customer 2: a view every 5 days, a month's pause, then the same again
    habitual = [(2, d, "mortgage") for d in _days("2024-01-03", 36, 5) + _days("2024-08-01", 18, 5)]
    # customer 3: a burst, silence, and a second burst long after (two episodes)
    two_bursts = [(3, d, "pension") for d in _days("2024-08-01", 4) + _days("2025-03-01", 4)]
    anchor = [(9, "2024-01-01", "promotions")]  # data start for everyone
    return _events(quiet_burst + habitual + two_bursts + anchor)


def test_burst_against_a_quiet_history_alerts_once_with_evidence_and_route(browsing):
    res = detect_alerts(np.array([1, 2, 3, 9]), None, browsing, "2024-08-15", "2024-10-31")
    mine = res.alerts[res.alerts["customer_id"] == 1]
    assert len(mine) == 1, res.alerts
    alert = mine.iloc[0]
    assert alert["signal"] == Signal.MORTGAGE.value and alert["specialist"] == "mortgage_specialist"
    assert alert["date"] == pd.Timestamp("2024-09-06")  # third view: the default min_count is 3
    assert alert["recent"] == 3 and alert["baseline"] == 0 and alert["score"] > 3
    assert "3 'mortgage'/'insurance' views/searches in 30 days" in alert["evidence"]
    # transaction signals are skipped (no table), topic ones are tested
    assert set(res.skipped) == {s.value for s in Signal if s.value.endswith(("transfers", "outflow"))}


def test_habitual_browser_back_at_their_usual_rate_is_not_alerted_but_a_naive_rule_would(browsing):
    cfg = AlertConfig(cooldown_days=14)  # the month's pause ends the naive rule's episode
    ours = detect_alerts(np.array([1, 2, 3, 9]), None, browsing, "2024-08-01", "2024-10-31", cfg)
    assert 2 not in set(ours.alerts["customer_id"]) and 1 in set(ours.alerts["customer_id"])
    naive = detect_alerts(np.array([1, 2, 3, 9]), None, browsing, "2024-08-01", "2024-10-31", cfg, naive_count=3)
    assert 2 in set(naive.alerts["customer_id"])


def test_a_need_read_across_its_pages_is_one_signal():
    """Two study-abroad views and one on currency: no single page reaches 3, the need does."""
    rows = [(4, "2024-09-02", "study_abroad"), (4, "2024-09-05", "fx"), (4, "2024-09-09", "study_abroad")]
    events = _events(rows + [(9, "2024-01-01", "promotions")])
    alerts = detect_alerts(np.array([4, 9]), None, events, "2024-08-15", "2024-10-31").alerts
    assert list(alerts["signal"]) == [Signal.STUDY_ABROAD.value]
    assert alerts.iloc[0]["date"] == pd.Timestamp("2024-09-09") and alerts.iloc[0]["recent"] == 3
    per_page = detect_alerts(np.array([4, 9]), None, events, "2024-08-15", "2024-10-31", naive_count=3).alerts
    assert list(per_page["signal"]) == [Signal.STUDY_ABROAD.value]  # the naive rule reads the same pooled pages
    # the overseas-account signal reads only its own page: one view is no signal
    assert Signal.OVERSEAS_ACCOUNT.value not in set(alerts["signal"])


def test_one_alert_per_episode_and_daily_runs_never_repeat_it(browsing):
    ids = np.array([1, 2, 3, 9])
    whole = detect_alerts(ids, None, browsing, "2024-07-25", "2025-04-30").alerts
    pension = whole[whole["customer_id"] == 3]
    assert list(pension["date"].dt.strftime("%Y-%m-%d")) == ["2024-08-03", "2025-03-03"]
    daily = pd.concat(
        [detect_alerts(ids, None, browsing, d, d).alerts for d in pd.date_range("2024-08-01", "2024-08-10")]
    )
    assert len(daily[daily["customer_id"] == 3]) == 1


def test_config_routes_and_thresholds_are_typed():
    cfg = AlertConfig(
        routing={**AlertConfig().routing, Signal.PENSION: {"specialist": "pension_desk", "channel": "email"}}
    )
    assert cfg.routing[Signal.PENSION].specialist == "pension_desk"
    with pytest.raises(ValueError, match="channel"):
        AlertConfig(routing={Signal.PENSION: {"specialist": "x", "channel": "carrier_pigeon"}})
    with pytest.raises(ValueError, match="no route"):
        AlertConfig(routing={Signal.PENSION: {"specialist": "x", "channel": "email"}})


def test_scan_of_a_simulated_bank(sim_raw):
    scan = alerts_from_raw(sim_raw, "2025-01-01", "2025-06-30")
    a = scan.alerts
    assert len(a) > 0 and scan.skipped == {} and scan.warnings == []
    assert a["date"].between("2025-01-01", "2025-06-30").all()
    assert not a.duplicated(["customer_id", "signal", "date"]).any()
    # episode rule across the whole scan: two alerts of one signal for one customer are > cooldown apart
    gaps = a.sort_values("date").groupby(["customer_id", "signal"])["date"].diff().dropna()
    assert (gaps > pd.Timedelta(days=AlertConfig().cooldown_days)).all()
    # the same scan in two halves gives the same alerts (stateless episode rule)
    halves = pd.concat(
        [
            alerts_from_raw(sim_raw, "2025-01-01", "2025-03-31").alerts,
            alerts_from_raw(sim_raw, "2025-04-01", "2025-06-30").alerts,
        ]
    )
    key = ["customer_id", "signal", "date"]
    pd.testing.assert_frame_equal(
        halves.sort_values(key).reset_index(drop=True), a.sort_values(key).reset_index(drop=True)
    )


def test_raw_scan_reads_exactly_the_rows_the_detector_needs(sim_raw):
    """The streaming reader (row group by row group, signal rows only) loses and adds nothing."""
    from features.contract import read_raw

    raw = read_raw(sim_raw, ["transactions", "events"])
    ids = raw["customers"]["customer_id"].to_numpy()
    start = min(raw["transactions"]["ts"].min(), raw["events"]["ts"].min()).normalize()
    whole = detect_alerts(ids, raw["transactions"], raw["events"], "2025-01-01", "2025-06-30", None, start).alerts
    ranged = alerts_from_raw(sim_raw, "2025-01-01", "2025-06-30").alerts  # one range: 2,000 customers
    assert len(whole) > 20
    pd.testing.assert_frame_equal(ranged, whole)


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2025-13-01", None, "--since '2025-13-01' is not a date"),
        ("2025-03-01", "yesterday-ish", "--until 'yesterday-ish' is not a date"),
        ("2025-03-01", "2025-02-01", "is before --since"),
        ("2031-01-01", None, "outside the data"),
        ("2024-01-15", None, "less than 60 days of own history"),
    ],
)
def test_bad_dates_are_input_errors(sim_raw, since, until, message):
    with pytest.raises(InputError, match=message):
        alerts_from_raw(sim_raw, since, until)


def _copy_without(src, dst, table):
    dst.mkdir()
    for f in src.glob("*.parquet"):
        if f.name != f"{table}.parquet":
            shutil.copy(f, dst / f.name)
    return dst


def test_missing_events_skips_topic_signals_with_a_warning(sim_raw, tmp_path):
    raw = _copy_without(sim_raw, tmp_path / "raw", "events")
    scan = alerts_from_raw(raw, "2025-01-01", "2025-03-31")
    topic = {s.value for s in Signal if s.value.endswith("_interest")}
    assert set(scan.skipped) == topic and all("no events table" in v for v in scan.skipped.values())
    assert any("events.parquet is missing" in w for w in scan.warnings)
    assert len(scan.alerts) and not scan.alerts["signal"].isin(topic).any()


def test_cli_writes_alerts_and_maps_bad_input_to_exit_2(sim_raw, tmp_path):
    from clientlens.cli import app

    runner = CliRunner()
    out = tmp_path / "alerts.parquet"
    ok = runner.invoke(app, ["alerts", "--raw", str(sim_raw), "--since", "2025-05-01", "--out", str(out), "--json"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.output.strip().splitlines()[-1])
    assert summary["alerts"] == len(pd.read_parquet(out)) > 0 and summary["until"] == "2025-06-30"
    bad = runner.invoke(app, ["alerts", "--raw", str(sim_raw), "--since", "soon", "--out", str(tmp_path / "x.parquet")])
    assert bad.exit_code == 2 and "--since 'soon' is not a date" in bad.output
    assert not (tmp_path / "x.parquet").exists()
    empty = tmp_path / "empty"
    _copy_without(sim_raw, empty, "transactions")
    (empty / "events.parquet").unlink()
    none = runner.invoke(
        app, ["alerts", "--raw", str(empty), "--since", "2025-05-01", "--out", str(tmp_path / "y.csv")]
    )
    assert none.exit_code == 2 and "neither transactions.parquet nor events.parquet" in none.output
