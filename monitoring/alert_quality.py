"""How well demand alerts anticipate the simulator's life events (issue #14; evaluation code only).

The simulator plants at most one life event per customer (`truth.life_event`,
`truth.life_event_date`). A life-event signal is mapped to the events it anticipates
(`SIGNAL_EVENTS`); signals without one are left out of this measure: `large_outflow` and `brokerage_transfers`
(retention and investment, not life events) and `overseas_transfers` (in the simulator they
follow the study-abroad event, they do not precede it). Life events of customers who churned
before the event are not counted: the bank's data ends before the need arises.

- An alert is a **hit** when the customer's life event is one its signal anticipates and falls
  1..`hit_window_days` days after the alert. **Precision** = hits / alerts, over alerts whose
  whole hit window lies inside the data (so a miss is a real miss).
- A life event is **found** when at least one hit alert precedes it. **Recall** = found / life
  events whose hit window lies inside the scanned days (date − hit window ≥ scan start).
- **Lead time** of a found event = event date − its earliest hit alert; the median is reported.

The naive rule is `features.alerts.detect_alerts(..., naive_count=N)`: the raw window count
reaching N, whatever the customer's own history, same windows and episode rule; with
`sources=features.alerts.PER_PAGE_SOURCES` each topic signal counts its own page only
("3 mortgage views in 30 days"), with the default sources the detector's pooled pages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.alerts import Signal

SIGNAL_EVENTS: dict[Signal, tuple[str, ...]] = {
    Signal.MORTGAGE: ("home_purchase",),
    Signal.INSURANCE: ("home_purchase",),
    Signal.STUDY_ABROAD: ("child_study_abroad",),
    Signal.OVERSEAS_ACCOUNT: ("child_study_abroad",),
    Signal.PENSION: ("retirement",),
}
HIT_WINDOW_DAYS = 120  # browsing starts 1-3 months before the event's month (features/SIMULATOR.md §4)


@dataclass(frozen=True)
class Quality:
    alerts: int
    hits: int
    precision: float
    events: int
    found: int
    recall: float
    median_lead_days: float | None

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def life_event_quality(
    alerts: pd.DataFrame,
    truth: pd.DataFrame,
    scan_start: pd.Timestamp,
    data_end: pd.Timestamp,
    hit_window_days: int = HIT_WINDOW_DAYS,
) -> Quality:
    """Precision, recall and median lead time of `alerts` against `truth`'s life events."""
    window = pd.Timedelta(days=hit_window_days)
    mapped = alerts[alerts["signal"].isin([s.value for s in SIGNAL_EVENTS])]
    # a customer who left before the event leaves no trace to find: not counted (nor are their alerts hits)
    gone = truth["churn_date"].notna() & (truth["churn_date"] < truth["life_event_date"])
    events = truth.loc[truth["life_event"].notna() & ~gone, ["customer_id", "life_event", "life_event_date"]]
    events = events.astype({"life_event": str})
    joined = mapped.merge(events, on="customer_id", how="left")
    expected = joined["signal"].map({s.value: e for s, e in SIGNAL_EVENTS.items()})
    matches = np.array(
        [isinstance(ev, str) and ev in exp for ev, exp in zip(joined["life_event"], expected, strict=True)], dtype=bool
    )
    lead = (joined["life_event_date"] - joined["date"]).dt.days
    joined["hit"] = matches & (lead >= 1) & (lead <= hit_window_days)
    judged = joined[joined["date"] + window <= data_end]
    hits = int(judged["hit"].sum())
    eligible = events[(events["life_event_date"] - window >= scan_start) & (events["life_event_date"] <= data_end)]
    hit_rows = joined[joined["hit"]]
    first = hit_rows.groupby("customer_id")["date"].min()
    found = eligible[eligible["customer_id"].isin(first.index)]
    leads = (found["life_event_date"] - found["customer_id"].map(first)).dt.days
    return Quality(
        alerts=len(judged),
        hits=hits,
        precision=hits / len(judged) if len(judged) else float("nan"),
        events=len(eligible),
        found=len(found),
        recall=len(found) / len(eligible) if len(eligible) else float("nan"),
        median_lead_days=float(leads.median()) if len(leads) else None,
    )
