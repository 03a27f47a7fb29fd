"""`POST /alerts`: demand alerts for customers whose recent transactions and events are in the body.

The request carries each customer's own history (the detector compares the last
`window_days` with the `baseline_days` before: send at least `min_baseline_days` +
`window_days` of history for a test to run). Alerts are those raised on days since..until
(default: the last day in the body), with the same detector, thresholds, routing and episode
rule as `clientlens alerts` (`features.alerts.detect_alerts`). A customer sent without an
`events` list gets no topic signals (listed in `skipped_signals`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features import vocab
from features.alerts import ALERT_COLUMNS, AlertConfig, detect_alerts
from features.contract import validate_frame

MAX_CUSTOMERS = 1_000


class AlertTransaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: dt.datetime
    amount: float = Field(gt=0)
    direction: Literal[vocab.DIRECTIONS]  # type: ignore[valid-type]
    category: Literal[vocab.TXN_CATEGORIES]  # type: ignore[valid-type]
    counterparty: Literal[vocab.COUNTERPARTIES]  # type: ignore[valid-type]
    channel: Literal[vocab.CHANNELS] = "mobile"  # type: ignore[valid-type]
    product_type: Literal[vocab.PRODUCT_TYPES] | None = None  # type: ignore[valid-type]


class AlertEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: dt.datetime
    event_type: Literal[vocab.EVENT_TYPES]  # type: ignore[valid-type]
    topic: Literal[vocab.TOPICS] | None = None  # type: ignore[valid-type]


class AlertCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: int = Field(ge=0)
    transactions: list[AlertTransaction] = Field(default_factory=list)
    events: list[AlertEvent] | None = Field(None, description="Omit when unknown: topic signals are skipped.")


class AlertsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customers: list[AlertCustomer] = Field(min_length=1, max_length=MAX_CUSTOMERS)
    since: dt.date | None = Field(None, description="First day alerts may be raised on (default: until).")
    until: dt.date | None = Field(None, description="Last day (default: the last day in the body).")
    history_start: dt.date | None = Field(None, description="First day the history covers (default: earliest ts).")


class Alert(BaseModel):
    customer_id: int
    date: dt.date
    signal: str
    specialist: str
    channel: str
    priority: int
    score: float
    recent: float
    expected: float
    baseline: float
    baseline_days: int
    window_days: int
    evidence: str


class AlertsResponse(BaseModel):
    customers: int
    alerts: list[Alert]
    skipped_signals: dict[str, str]


def _frame(rows: Sequence[tuple[int, BaseModel]]) -> pd.DataFrame:
    return pd.DataFrame([{"customer_id": cid, **r.model_dump()} for cid, r in rows])


def alerts_for(request: AlertsRequest, config: AlertConfig | None = None) -> AlertsResponse:
    """Run the detector on the request's customers. Raises `InputError` (a 400) on unusable input."""
    from core.errors import InputError

    ids = [c.customer_id for c in request.customers]
    if len(set(ids)) != len(ids):
        raise InputError("customers: a customer_id occurs more than once")
    txn_rows = [(c.customer_id, t) for c in request.customers for t in c.transactions]
    with_events = [c for c in request.customers if c.events is not None]
    ev_rows = [(c.customer_id, e) for c in with_events for e in c.events or []]
    transactions = None
    if txn_rows:
        transactions = _frame(txn_rows)
        transactions["ts"] = pd.to_datetime(transactions["ts"], utc=True).dt.tz_localize(None)
        # ids need only be unique inside the request: customer × 10^6 + position (the simulator's numbering)
        position = transactions.groupby("customer_id").cumcount()
        transactions.insert(0, "txn_id", transactions["customer_id"] * 1_000_000 + position)
        transactions = validate_frame("transactions", transactions)
    events = None
    if with_events:
        events = _frame(ev_rows) if ev_rows else pd.DataFrame(columns=["customer_id", "ts", "event_type", "topic"])
        events = events.astype({"customer_id": "int64"})
        events["ts"] = pd.to_datetime(events["ts"], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
        events = validate_frame("events", events)
    times = [f["ts"] for f in (transactions, events) if f is not None and len(f)]
    if not times:
        raise InputError("customers: no transactions or events in the request: nothing to alert on")
    last = max(t.max() for t in times).normalize()
    until = pd.Timestamp(request.until) if request.until else last
    since = pd.Timestamp(request.since) if request.since else until
    start = pd.Timestamp(request.history_start) if request.history_start else min(t.min() for t in times)
    result = detect_alerts(np.array(ids), transactions, events, since, until, config, start)
    skipped = {k: v.replace("table", "in the request") for k, v in result.skipped.items()}
    if events is not None and len(with_events) < len(ids):
        skipped.setdefault("topic signals", f"no events sent for {len(ids) - len(with_events)} customer(s)")
    alerts = result.alerts[ALERT_COLUMNS].to_dict("records")
    return AlertsResponse(customers=len(ids), alerts=[Alert(**a) for a in alerts], skipped_signals=skipped)
