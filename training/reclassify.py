"""Quarterly re-classification: score two as-of dates with the champions and report who moved (#14).

`reclassify(before, after, truth=None)` is pure: two scored frames (the output of
`training.scoring.score_frame`, plus the feature columns kept for context) in, a
`Reclassification` out — a migration matrix per dimension (counts and row shares), the
movers (customer, dimension, from, to, predictions at both dates, reasons at the later date
that are new), the actions the policy now proposes for them, and the bull-market
"potential aggressive" list: customers *stated* conservative whose investment behaviour now
ranks in the top `POTENTIAL_SHARE` of the stated-conservatives and ranks higher than at the
earlier date (behaviour = `APPETITE_BEHAVIOUR`, see `appetite_index`). Without those
feature columns the list falls back to the risk model: revealed aggressive (scoring's
`hidden_aggressive` flag, else the predicted `risk_appetite`) at the later date and not at
the earlier one. With `truth` (the simulator's `truth.parquet`) it reports the share of the
list that is truly latent-aggressive (`truth.hidden_aggressive`) against the base rate among
all conservative-rated customers.

Dimensions are whatever scoring returned (`tier`, `risk_appetite`, `relationship_depth`,
`lifecycle_stage`, `segment`): a missing column is skipped and listed, never an error, so
the report follows the models as they gain dimensions.

`reclassify_panel` is the I/O edge (`clientlens reclassify`): reads the panel, picks the
as-of dates, loads the champions, scores, writes `reclassify.json`, `movers.parquet` and
`report.html` (heat maps and a tier flow, embedded PNGs) atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InputError
from core.tasks import (
    DEPTH_COLUMN,
    HIDDEN_AGGRESSIVE_COLUMN,
    LIFECYCLE_COLUMN,
    RISK_CLASSES,
    RISK_RANK,
    TASK_NAMES,
    reasons_column,
)
from core.tasks import task as task_of
from training.segments import segment_labels, segment_parts

log = logging.getLogger(__name__)

DIMENSIONS = ("tier", "risk_appetite", "relationship_depth", "lifecycle_stage", "segment")
PREDICTIONS = ("tier", "upgrade_proba", "churn_proba", "risk_appetite", "risk_proba_aggressive", "next_action")
# The model whose reasons explain a move in each dimension (the movers' `new_reasons`); the bull-market
# list's `reasons` are the risk model's. No other reasons are read, so `reclassify_panel` explains only them.
REASON_TASKS = {"tier": "tier", "risk_appetite": "risk", "segment": "risk"}
LIST_REASONS_TASK = "risk"
REASON_COLUMNS = {dim: reasons_column(task) for dim, task in REASON_TASKS.items()}
AGGRESSIVE = "aggressive"
CONSERVATIVE = "conservative"
# Behaviour that reveals risk appetite (feature names of features.registry): the share of topic
# views about equity funds, brokerage transfers + equity views per login, money sent to brokerages.
# A stated-conservative customer high on all three acts on an appetite the questionnaire missed.
APPETITE_BEHAVIOUR = ("equity_funds_view_share_180d", "invest_interest_per_login_180d", "outflow_brokerage_180d")
# The bull-market list: this top share of the stated-conservatives by `appetite_index` (whose
# index also rose). An invitation to a re-assessment costs an advisor's time: a short list.
POTENTIAL_SHARE = 0.05
# A customer's appetite is a trait, while the posterior's class probabilities move with three months of
# browsing: on the demo bank (truth constant) 600 of 3,000 changed predicted risk class in one quarter, right
# 47% of the time before and 46% after. A risk move counts only when the later posterior favours the new class
# over the customer's class at the earlier date by more than this; otherwise the customer keeps it (`held`).
# 0.3 halves the moves and holds latent accuracy or improves it slightly (benchmarks/RESULTS.md, #12 fifth session).
RISK_MOVE_MARGIN = 0.3


@dataclass
class Reclassification:
    """What moved between two as-of dates."""

    before: pd.Timestamp
    after: pd.Timestamp
    customers: int
    matrices: dict[str, pd.DataFrame]  # dimension -> counts (rows: from, columns: to)
    movers: pd.DataFrame
    potential_aggressive: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    truth_check: dict[str, Any] | None = None
    potential_rule: str = ""
    held_risk: int = 0  # predicted risk class changed, evidence within `risk_margin`: the earlier class kept
    risk_margin: float | None = None  # None: the scores carry no three-class probabilities, nothing held

    @property
    def actions(self) -> pd.DataFrame:
        return proposed_actions(self.movers)

    def summary(self) -> dict[str, Any]:
        moved = {d: int(m.to_numpy().sum() - np.trace(m.reindex(columns=m.index, fill_value=0).to_numpy()))
                 for d, m in self.matrices.items()}  # fmt: skip
        out = {
            "from": self.before.date().isoformat(),
            "to": self.after.date().isoformat(),
            "customers": self.customers,
            "moved": moved,
            "movers": int(self.movers["customer_id"].nunique()) if len(self.movers) else 0,
            "potential_aggressive": len(self.potential_aggressive),
            "potential_aggressive_rule": self.potential_rule,
            "proposed_actions": self.actions.to_dict(orient="records"),
            "skipped_dimensions": self.skipped,
            "risk_moves_held": self.held_risk,
            "risk_move_margin": self.risk_margin,
            "matrices": {d: _matrix_json(m) for d, m in self.matrices.items()},
        }
        if self.truth_check is not None:
            out["truth"] = self.truth_check
        return out


def _matrix_json(m: pd.DataFrame) -> dict[str, Any]:
    shares = m.div(m.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    return {
        "from": [str(i) for i in m.index],
        "to": [str(c) for c in m.columns],
        "counts": m.to_numpy().astype(int).tolist(),
        "row_shares": np.round(shares.to_numpy(), 4).tolist(),
    }


def _labels(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "unknown").astype(str)


def migration_matrix(before: pd.Series, after: pd.Series) -> pd.DataFrame:
    """Counts of customers by (label before, label after); rows and columns in a stable order."""
    b, a = _labels(before), _labels(after)
    order = sorted(set(b) | set(a), key=_order_key)
    return pd.crosstab(b, a).reindex(index=order, columns=order, fill_value=0)


_KNOWN_ORDER = {
    v: i
    for i, v in enumerate(
        ("mass", "affluent", "hnw", "conservative", "balanced", "not_aggressive", "aggressive")
        + ("basic", "multi_product", "ecosystem", "young_professional", "family_growth", "retirement")
    )
}


def _order_key(v: str) -> tuple[int, str]:
    return (_KNOWN_ORDER.get(v, 100), v)


def _new_reasons(after: Any, before: Any, k: int = 3) -> str:
    """Top reasons at the later date whose feature was not among the earlier top reasons."""

    def names(rs) -> list[str]:
        if rs is None or (isinstance(rs, float) and np.isnan(rs)):
            return []
        return [r["feature"] if isinstance(r, dict) else str(r) for r in list(rs)[:k]]

    old = set(names(before))
    fresh = [n for n in names(after) if n not in old]
    return ", ".join(fresh or names(after))


def _revealed_aggressive(both: pd.DataFrame, suffix: str) -> pd.Series:
    """Revealed aggressive: the model's own hidden-aggressive flag when scoring gives one (its
    threshold is tuned for stated-conservative customers), else the predicted class."""
    flag = f"{HIDDEN_AGGRESSIVE_COLUMN}{suffix}"
    if flag in both.columns:
        return both[flag].fillna(False).astype(bool)
    return _labels(both[f"risk_appetite{suffix}"]) == AGGRESSIVE


def appetite_index(frame: pd.DataFrame, mask: np.ndarray) -> pd.Series:
    """Mean percentile (0..1] of the `APPETITE_BEHAVIOUR` columns among the rows in `mask`; a
    missing value (no views, no transfers) ranks lowest. NaN outside `mask`.

    Percentiles are taken within one date, so a bull market lifting everyone's browsing does
    not by itself move anyone up; what moves a customer is behaving more like an investor
    than their peers do.
    """
    out = pd.Series(np.nan, index=frame.index)
    sub = frame.loc[mask, list(APPETITE_BEHAVIOUR)]
    if len(sub):
        ranks = [sub[c].astype(float).rank(pct=True, na_option="top") for c in APPETITE_BEHAVIOUR]
        out.loc[mask] = sum(ranks) / len(ranks)
    return out


def _behaviour_columns(both: pd.DataFrame) -> bool:
    return all(f"{c}{sfx}" in both.columns for c in APPETITE_BEHAVIOUR for sfx in ("_from", "_to"))


def _potential_aggressive(both: pd.DataFrame, conservative: pd.Series, share: float) -> tuple[pd.Series, str, dict]:
    """Who is listed (bool per row of `both`), which rule listed them, and the index columns."""
    if _behaviour_columns(both):
        mask = conservative.to_numpy()
        idx = {
            sfx: appetite_index(
                both[[f"{c}{sfx}" for c in APPETITE_BEHAVIOUR]].set_axis(APPETITE_BEHAVIOUR, axis=1), mask
            )
            for sfx in ("_from", "_to")
        }
        bar = idx["_to"][mask].quantile(1 - share) if mask.any() else np.inf
        listed = conservative & (idx["_to"] >= bar) & (idx["_to"] > idx["_from"])
        rule = (
            f"top {share:.0%} of stated-conservative customers by investment behaviour "
            f"({', '.join(APPETITE_BEHAVIOUR)}), ranked higher than at the earlier date"
        )
        return listed, rule, {"appetite_index_from": idx["_from"], "appetite_index_to": idx["_to"]}
    listed = conservative & _revealed_aggressive(both, "_to") & ~_revealed_aggressive(both, "_from")
    return listed, "risk model: revealed aggressive at the later date, not at the earlier", {}


def proposed_actions(movers: pd.DataFrame) -> pd.DataFrame:
    """Actions the policy now proposes for movers whose next action changed: action, customers, from which."""
    if not {"next_action_from", "next_action_to"} <= set(movers.columns) or movers.empty:
        return pd.DataFrame(columns=["next_action", "customers", "was"])
    per = movers.drop_duplicates("customer_id")
    changed = per[per["next_action_to"].astype(str) != per["next_action_from"].astype(str)]
    rows = []
    for action, grp in changed.groupby(changed["next_action_to"].astype(str)):
        was = grp["next_action_from"].astype(str).value_counts().head(3)
        rows.append({"next_action": action, "customers": len(grp),
                     "was": ", ".join(f"{k} ({v})" for k, v in was.items())})  # fmt: skip
    out = pd.DataFrame(rows, columns=["next_action", "customers", "was"])
    return out.sort_values(["customers", "next_action"], ascending=[False, True]).reset_index(drop=True)


def hold_risk(both: pd.DataFrame, margin: float) -> np.ndarray | None:
    """Rows of `both` (merged `_from`/`_to`) whose predicted risk class changed but whose later posterior
    favours the new class over the earlier one by `margin` or less; None without the three class probabilities."""
    cols = [f"{c}_to" for c in task_of("risk").score_columns(RISK_CLASSES)]
    if not {"risk_appetite_from", "risk_appetite_to", *cols} <= set(both.columns):
        return None
    P = both[cols].to_numpy(dtype=np.float64)
    old = _labels(both["risk_appetite_from"]).map(RISK_RANK).to_numpy(dtype=np.float64)
    new = _labels(both["risk_appetite_to"]).map(RISK_RANK).to_numpy(dtype=np.float64)
    known = ~np.isnan(old) & ~np.isnan(new) & (old != new)
    rows = np.arange(len(both))
    o, n = np.where(known, old, 0).astype(np.int64), np.where(known, new, 0).astype(np.int64)
    return known & ~(P[rows, n] - P[rows, o] > margin)


def _check_margin(margin: float) -> None:
    if not 0 <= margin < 1:
        raise InputError(f"--risk-margin {margin}: must be at least 0 and below 1 (a difference of probabilities)")


def _apply_hold(both: pd.DataFrame, held: np.ndarray) -> pd.DataFrame:
    """`both` with the held rows' later risk class (and the risk part of their segment) set to the earlier one."""
    out = both.copy()
    out.loc[held, "risk_appetite_to"] = out.loc[held, "risk_appetite_from"]
    if "segment_to" in out.columns and held.any():
        # Rebuilt by the one definition of the segment string (training.segments.segment_labels). Its tier is
        # the customer's asset tier at T, which scores carry only inside the segment (their `tier` column is
        # the predicted future tier), so the tier comes back from the label; lifecycle and depth from their
        # own columns when the scores have them.
        seg = out.loc[held, "segment_to"]
        parts = segment_parts(seg)
        for part, column in (("lifecycle", f"{LIFECYCLE_COLUMN}_to"), ("depth", f"{DEPTH_COLUMN}_to")):
            if column in out.columns:
                parts[part] = out.loc[held, column].where(out.loc[held, column].notna(), None)
        rebuilt = segment_labels(
            parts["tier"].to_numpy(object),
            out.loc[held, "risk_appetite_from"].to_numpy(object),
            parts["lifecycle"].to_numpy(object),
            parts["depth"].to_numpy(object),
        )
        # a label that is not tier/risk/lifecycle/depth (a hand-made book) is left as it was
        out.loc[held, "segment_to"] = np.where(parts["tier"].isna().to_numpy(), seg.to_numpy(object), rebuilt)
    return out


def reclassify(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    before_date: pd.Timestamp,
    after_date: pd.Timestamp,
    truth: pd.DataFrame | None = None,
    potential_share: float = POTENTIAL_SHARE,
    risk_margin: float = RISK_MOVE_MARGIN,
) -> Reclassification:
    """Compare two scored frames (one row per customer, `customer_id` + scoring columns).

    Risk moves follow `hold_risk`: a customer keeps the earlier risk class unless the later posterior favours
    the new one by more than `risk_margin` (0 = every change of the predicted class is a move)."""
    _check_margin(risk_margin)
    for name, frame in (("before", before), ("after", after)):
        if "customer_id" not in frame.columns:
            raise InputError(f"{name} scores have no customer_id column")
    predicted = before.merge(after, on="customer_id", suffixes=("_from", "_to"), validate="one_to_one")
    if predicted.empty:
        raise InputError("no customer is present at both as-of dates")
    held = hold_risk(predicted, risk_margin)
    both = predicted if held is None else _apply_hold(predicted, held)
    matrices, skipped, movers = {}, [], []
    for dim in DIMENSIONS:
        if dim not in before.columns or dim not in after.columns:
            skipped.append(dim)
            continue
        b, a = _labels(both[f"{dim}_from"]), _labels(both[f"{dim}_to"])
        matrices[dim] = migration_matrix(b, a)
        moved = both[b != a]
        if moved.empty:
            continue
        rows = pd.DataFrame({"customer_id": moved["customer_id"], "dimension": dim,
                             "from": b[b != a], "to": a[b != a]})  # fmt: skip
        for p in PREDICTIONS:
            if f"{p}_from" in moved.columns:
                rows[f"{p}_from"] = moved[f"{p}_from"]
                rows[f"{p}_to"] = moved[f"{p}_to"]
        rc = REASON_COLUMNS.get(dim)
        if rc and f"{rc}_to" in moved.columns:
            rows["new_reasons"] = [
                _new_reasons(x, y) for x, y in zip(moved[f"{rc}_to"], moved[f"{rc}_from"], strict=True)
            ]
        movers.append(rows)
    movers_df = (
        pd.concat(movers, ignore_index=True)
        if movers
        else pd.DataFrame(columns=["customer_id", "dimension", "from", "to"])
    )
    potential = pd.DataFrame(columns=["customer_id"])
    list_reasons = f"{reasons_column(LIST_REASONS_TASK)}_to"
    truth_check = None
    rule = ""
    if {"stated_risk_to", "risk_appetite_from", "risk_appetite_to"} <= set(both.columns):
        conservative = _labels(both["stated_risk_to"]) == CONSERVATIVE
        turned, rule, index_cols = _potential_aggressive(predicted, conservative, potential_share)
        for name, values in index_cols.items():
            predicted[name] = values
        cols = ["customer_id", "stated_risk_to", *index_cols, "risk_appetite_from", "risk_appetite_to"]
        cols += [
            c
            for c in ("risk_proba_aggressive_from", "risk_proba_aggressive_to", "next_action_to", list_reasons)
            if c in predicted.columns
        ]
        potential = predicted.loc[turned, cols].rename(columns={"stated_risk_to": "stated_risk"})
        if list_reasons in potential.columns:
            potential["reasons"] = [_new_reasons(x, None) for x in potential.pop(list_reasons)]
        if "appetite_index_to" in potential.columns:
            potential = potential.sort_values("appetite_index_to", ascending=False)
        elif "risk_proba_aggressive_to" in potential.columns:
            potential = potential.sort_values("risk_proba_aggressive_to", ascending=False)
        if truth is not None and "hidden_aggressive" in truth.columns:
            hidden = both[["customer_id"]].merge(truth[["customer_id", "hidden_aggressive"]], how="left")[
                "hidden_aggressive"
            ]
            hidden = hidden.fillna(False).astype(bool).to_numpy()
            base = float(hidden[conservative.to_numpy()].mean()) if conservative.any() else float("nan")
            share = float(hidden[turned.to_numpy()].mean()) if turned.any() else float("nan")
            truth_check = {
                "rule": rule,
                "listed": int(turned.sum()),
                "truly_latent_aggressive": int(hidden[turned.to_numpy()].sum()),
                "share": round(share, 4),
                "base_rate_among_conservative_rated": round(base, 4),
                "lift": round(share / base, 2) if base and not np.isnan(share) else None,
            }
            if held is not None and "latent_risk" in truth.columns:
                truth_check["latent_risk_accuracy_at_to"] = _latent_accuracy(both, predicted, truth)
    else:
        skipped.append("potential_aggressive (needs stated_risk and risk_appetite)")
    return Reclassification(pd.Timestamp(before_date), pd.Timestamp(after_date), len(both), matrices,
                            movers_df, potential.reset_index(drop=True), skipped, truth_check, rule,
                            held_risk=int(held.sum()) if held is not None else 0,
                            risk_margin=risk_margin if held is not None else None)  # fmt: skip


def _latent_accuracy(both: pd.DataFrame, predicted: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Share of customers whose risk class at the later date is their true latent appetite: the class the
    report keeps (moves held within the margin) and the later date's predicted class."""
    latent = predicted[["customer_id"]].merge(truth[["customer_id", "latent_risk"]], how="left")["latent_risk"]
    latent = _labels(latent).to_numpy()
    return {
        "kept": round(float((_labels(both["risk_appetite_to"]).to_numpy() == latent).mean()), 4),
        "predicted": round(float((_labels(predicted["risk_appetite_to"]).to_numpy() == latent).mean()), 4),
    }


# --------------------------------------------------------------------------- report


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def heatmap_png(dim: str, m: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = m.div(m.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    n = len(m)
    fig, ax = plt.subplots(figsize=(max(3.5, 0.55 * n + 2), max(3.0, 0.45 * n + 1.5)))
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), [str(c) for c in m.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(i) for i in m.index], fontsize=8)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    ax.set_title(f"{dim}: share of each 'from' row", fontsize=10)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                v = int(m.iat[i, j])
                if v:
                    ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=7,
                            color="white" if shares.iat[i, j] > 0.6 else "black")  # fmt: skip
    return _png(fig)


def flow_png(m: pd.DataFrame, title: str = "tier flow") -> str:
    """A two-column flow (alluvial) view: band widths are customer counts from -> to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = float(m.to_numpy().sum()) or 1.0
    gap = 0.02
    cats = list(m.index)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7, 4.5))

    def stack(sizes):
        pos, y = {}, 0.0
        for c in cats:
            pos[c] = y
            y += sizes.get(c, 0) / total + gap
        return pos

    left_pos = stack(m.sum(axis=1).to_dict())
    right_pos = stack(m.sum(axis=0).to_dict())
    left_off = dict(left_pos)
    right_off = dict(right_pos)
    t = np.linspace(0, 1, 50)
    s = 3 * t**2 - 2 * t**3
    for i, a in enumerate(cats):
        for b in cats:
            h = m.at[a, b] / total
            if h <= 0:
                continue
            y0, y1 = left_off[a], right_off[b]
            lower = y0 + (y1 - y0) * s
            ax.fill_between(t, lower, lower + h, color=colours(i % 10), alpha=0.45 if a != b else 0.25, lw=0)
            left_off[a] += h
            right_off[b] += h
    for i, c in enumerate(cats):
        lh, rh = m.loc[c].sum() / total, m[c].sum() / total
        ax.add_patch(plt.Rectangle((-0.04, left_pos[c]), 0.04, lh, color=colours(i % 10)))
        ax.add_patch(plt.Rectangle((1.0, right_pos[c]), 0.04, rh, color=colours(i % 10)))
        ax.text(-0.06, left_pos[c] + lh / 2, f"{c} ({int(m.loc[c].sum()):,})", ha="right", va="center", fontsize=9)
        ax.text(1.06, right_pos[c] + rh / 2, f"{c} ({int(m[c].sum()):,})", ha="left", va="center", fontsize=9)
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(-0.02, max(max(left_off.values()), max(right_off.values())) + 0.02)
    ax.invert_yaxis()
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    return _png(fig)


def report_html(r: Reclassification, top: int = 50) -> str:
    s = r.summary()
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>clientlens re-classification</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "th{background:#f2f4f7}td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:1.5em}"
        ".wide{overflow-x:auto;max-width:100%}td{max-width:26em}.box{background:#f6f8fa;padding:.8em 1.2em;border-radius:6px;display:inline-block;margin-right:1em}</style>",
        "</head><body>",
        f"<h1>Re-classification {esc(s['from'])} &rarr; {esc(s['to'])}</h1>",
        f"<p><span class='box'><b>{s['customers']:,}</b> customers scored at both dates</span>"
        f"<span class='box'><b>{s['movers']:,}</b> moved in at least one dimension</span>"
        f"<span class='box'><b>{s['potential_aggressive']:,}</b> potential aggressive</span></p>",
    ]
    if r.truth_check:
        t = r.truth_check
        parts.append(
            f"<p><b>Check against the simulator's truth:</b> {t['truly_latent_aggressive']:,} of the "
            f"{t['listed']:,} listed are truly latent-aggressive ({t['share']:.1%}), against a base rate of "
            f"{t['base_rate_among_conservative_rated']:.1%} among all conservative-rated customers "
            f"(lift {t['lift']}&times;).</p>"
        )
    parts.append("<h2>Movements per dimension</h2><table><tr><th class='l'>dimension</th><th>customers moved</th></tr>")
    parts += [f"<tr><td class='l'>{esc(d)}</td><td>{n:,}</td></tr>" for d, n in s["moved"].items()]
    parts.append("</table>")
    if r.risk_margin is not None:
        parts.append(
            f"<p>Risk class kept for <b>{r.held_risk:,}</b> customers whose predicted class changed while the "
            f"posterior favoured the new class by {r.risk_margin} or less (an appetite is a trait; a quarter's "
            "browsing moves the posterior).</p>"
        )
    if r.truth_check and "latent_risk_accuracy_at_to" in r.truth_check:
        a = r.truth_check["latent_risk_accuracy_at_to"]
        parts.append(
            f"<p>Risk class right against the simulator's latent appetite at {esc(s['to'])}: "
            f"{a['kept']:.1%} as kept, {a['predicted']:.1%} as predicted at that date.</p>"
        )
    if r.skipped:
        parts.append(f"<p>Not in the scores, skipped: {esc(', '.join(r.skipped))}.</p>")
    if "tier" in r.matrices:
        parts.append(f"<h2>Tier flow</h2><img src='data:image/png;base64,{flow_png(r.matrices['tier'])}'>")
    parts.append("<h2>Migration heat maps</h2><div class='grid'>")
    for dim, m in r.matrices.items():
        if dim == "segment" and len(m) > 20:
            continue  # too many cells to read; the JSON holds the full matrix
        parts.append(f"<div><img src='data:image/png;base64,{heatmap_png(dim, m)}'></div>")
    parts.append("</div>")
    parts.append("<h2>Actions the policy now proposes for movers</h2>")
    parts.append("<p>Movers whose next action changed between the two dates, by the action now proposed.</p>")
    parts.append(_table(r.actions))
    parts.append("<h2>Bull-market list: stated conservative, behaving like an investor now</h2>")
    parts.append(
        f"<p>Listed by: {esc(r.potential_rule)}. Invite to a suitability re-assessment and, if it "
        "confirms, an equity-product trial.</p>"
    )
    parts.append(_table(r.potential_aggressive.head(top)))
    if len(r.potential_aggressive) > top:
        parts.append(f"<p>&hellip; and {len(r.potential_aggressive) - top:,} more in the JSON.</p>")
    parts.append("<h2>Movers (first rows)</h2>")
    parts.append(_table(r.movers.head(top)))
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>none</p>"
    head = "".join(f"<th class='l'>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            text = f"{v:.3f}" if isinstance(v, float) else str(v)
            cells.append(f"<td class='l'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='wide'><table><tr>{head}</tr>{''.join(body)}</table></div>"


# --------------------------------------------------------------------------- I/O edge


def explained_customers(r: Reclassification) -> dict[str, set[Any]]:
    """`{task: customer ids}` whose reasons `reclassify` reads: the movers of each dimension with reasons
    (`REASON_TASKS`, at both dates) and the bull-market list (`LIST_REASONS_TASK`)."""
    wanted: dict[str, set[Any]] = {}
    if len(r.movers):
        for dim, task in REASON_TASKS.items():
            ids = r.movers.loc[r.movers["dimension"] == dim, "customer_id"]
            wanted.setdefault(task, set()).update(ids.tolist())
    if len(r.potential_aggressive):
        wanted.setdefault(LIST_REASONS_TASK, set()).update(r.potential_aggressive["customer_id"].tolist())
    return wanted


def add_reasons(
    scored: pd.DataFrame, rows: pd.DataFrame, models: dict[str, Any], wanted: dict[str, set[Any]], top_k: int
) -> None:
    """Set `reasons_<task>` on the `wanted` customers' rows of `scored` (None elsewhere), scored by the same
    `score_frame` call as a whole book would be, on those rows alone."""
    from training.scoring import score_frame

    for task, ids in wanted.items():
        if task not in models:
            continue
        where = np.flatnonzero(rows["customer_id"].isin(ids).to_numpy())
        values = np.full(len(scored), None, dtype=object)
        if len(where):
            part = score_frame(rows.iloc[where], {task: models[task]}, explain=top_k)[reasons_column(task)]
            for i, reasons in zip(where, part, strict=True):
                values[i] = reasons
        scored[reasons_column(task)] = values


def _pick(panel_dates: pd.DatetimeIndex, wanted: pd.Timestamp, option: str) -> pd.Timestamp:
    earlier = panel_dates[panel_dates <= wanted]
    if not len(earlier):
        raise InputError(
            f"{option} {wanted.date()}: the panel's first as-of date is {panel_dates.min().date()}; no date at or before it"
        )
    return pd.Timestamp(earlier.max())


def reclassify_panel(
    features_dir: str | Path,
    date_from: str,
    date_to: str,
    out_dir: str | Path,
    *,
    truth_path: str | Path | None = None,
    models: dict[str, Any] | None = None,
    explain: int = 3,
    risk_margin: float = RISK_MOVE_MARGIN,
) -> dict[str, Any]:
    """Score the panel's rows at the as-of dates at or before `date_from` / `date_to`; write the report."""
    from core.io import read_table, write_table, write_text_atomic
    from features.alerts import parse_date

    _check_margin(risk_margin)
    start, end = parse_date(date_from, "--from"), parse_date(date_to, "--to")
    if end <= start:
        raise InputError(f"--to {end.date()} must be after --from {start.date()}")
    path = Path(features_dir) / "panel.parquet"
    panel = read_table(path, what="feature panel")
    if "as_of" not in panel.columns:
        raise InputError(f"{path}: no as_of column (not a feature panel)")
    dates = pd.DatetimeIndex(sorted(pd.to_datetime(panel["as_of"]).unique()))
    d_from, d_to = _pick(dates, start, "--from"), _pick(dates, end, "--to")
    if d_from == d_to:
        raise InputError(
            f"--from and --to both fall on the panel's as-of date {d_from.date()}; pick dates further apart"
        )
    if models is None:
        from training.scoring import load_models

        models, _ = load_models(list(TASK_NAMES))
    from training.scoring import score_frame

    frames, rows_at = {}, {}
    for d in (d_from, d_to):
        rows = panel[pd.to_datetime(panel["as_of"]) == d].reset_index(drop=True)
        scored = score_frame(rows, models)  # reasons below, for the rows the report shows
        for col in ("stated_risk", "relationship_depth", "lifecycle_stage", *APPETITE_BEHAVIOUR):
            if col in rows.columns and col not in scored.columns:
                scored[col] = rows[col].to_numpy()
        frames[d], rows_at[d] = scored, rows
    truth = read_table(truth_path, what="truth") if truth_path else None
    r = reclassify(
        frames[d_from], frames[d_to], before_date=d_from, after_date=d_to, truth=truth, risk_margin=risk_margin
    )
    if explain:
        # TreeSHAP for every customer was most of this command's time (3 models x 2 dates), while the report
        # reads the reasons of the movers and the listed customers only. A row's reasons depend on that row
        # alone, so explaining those rows and comparing again gives the same report as explaining all.
        wanted = explained_customers(r)
        for d in (d_from, d_to):
            add_reasons(frames[d], rows_at[d], models, wanted, explain)
        r = reclassify(
            frames[d_from], frames[d_to], before_date=d_from, after_date=d_to, truth=truth, risk_margin=risk_margin
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = r.summary()
    movers = r.movers.copy()
    write_table(movers, out / "movers.parquet")
    pot = r.potential_aggressive.copy()
    write_table(pot, out / "potential_aggressive.csv")
    write_text_atomic(out / "reclassify.json", json.dumps(summary, indent=2, default=str))
    write_text_atomic(out / "report.html", report_html(r))
    summary_small = {k: v for k, v in summary.items() if k != "matrices"}
    summary_small["out"] = str(out)
    summary_small["requested"] = [start.date().isoformat(), end.date().isoformat()]
    return summary_small
