"""`POST /alerts`: the handler on simulated customers agrees with the batch scan; bad input is a 400."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import InputError
from features.alerts import alerts_from_raw
from features.contract import read_raw
from serving.alerts_api import AlertsRequest, alerts_for

DAY = "2025-04-15"


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from features.simulate import simulate

    out = tmp_path_factory.mktemp("alerts_raw")
    simulate(out, customers=1000, months=16, seed=5)
    return out


def request_for(raw, ids, with_events=True) -> dict:
    tables = read_raw(raw, ["transactions", "events"], customer_ids=list(ids))
    customers = []
    for cid in ids:
        txn = tables["transactions"][tables["transactions"]["customer_id"] == cid]
        txn = txn[txn["ts"] < pd.Timestamp(DAY) + pd.Timedelta(days=1)]
        ev = tables["events"][tables["events"]["customer_id"] == cid]
        ev = ev[ev["ts"] < pd.Timestamp(DAY) + pd.Timedelta(days=1)]
        body = {
            "customer_id": int(cid),
            "transactions": [
                {k: (None if pd.isna(v) else v) for k, v in r.items()}
                for r in txn[["ts", "amount", "direction", "category", "counterparty", "channel", "product_type"]]
                .astype({"ts": str})
                .to_dict("records")
            ],
        }
        if with_events:
            body["events"] = [
                {k: (None if pd.isna(v) else v) for k, v in r.items()}
                for r in ev[["ts", "event_type", "topic"]].astype({"ts": str}).to_dict("records")
            ]
        customers.append(body)
    return {"customers": customers, "since": "2025-03-01", "until": DAY, "history_start": "2024-01-01"}


def test_endpoint_handler_matches_the_batch_scan(bank):
    batch = alerts_from_raw(bank, "2025-03-01", DAY).alerts
    assert len(batch) >= 3
    ids = sorted(set(batch["customer_id"].head(5))) + [int(batch["customer_id"].max()) + 1]  # + one quiet customer
    ids = [i for i in ids if i <= 1000]
    resp = alerts_for(AlertsRequest.model_validate(request_for(bank, ids)))
    got = pd.DataFrame([a.model_dump() for a in resp.alerts])
    want = batch[batch["customer_id"].isin(ids)]
    key = ["customer_id", "signal"]
    assert sorted(map(tuple, got[key].to_numpy().tolist())) == sorted(map(tuple, want[key].to_numpy().tolist()))
    assert resp.customers == len(ids) and resp.skipped_signals == {}


def test_without_events_topic_signals_are_skipped(bank):
    resp = alerts_for(AlertsRequest.model_validate(request_for(bank, [1, 2], with_events=False)))
    assert "mortgage_interest" in resp.skipped_signals
    assert all(a.signal in ("large_outflow", "brokerage_transfers", "overseas_transfers") for a in resp.alerts)


def test_bad_requests():
    with pytest.raises(ValueError, match="topic"):
        AlertsRequest.model_validate(
            {"customers": [{"customer_id": 1, "events": [{"ts": DAY, "event_type": "view", "topic": "yachts"}]}]}
        )
    short = {"customers": [{"customer_id": 1, "events": [{"ts": DAY, "event_type": "view", "topic": "mortgage"}]}]}
    with pytest.raises(InputError, match="days of own history"):
        alerts_for(AlertsRequest.model_validate(short))
    with pytest.raises(InputError, match="nothing to alert on"):
        alerts_for(AlertsRequest.model_validate({"customers": [{"customer_id": 1}]}))
