"""The data-quality report of `clientlens unify`: one self-contained HTML page (charts inlined as PNG).

Sections: what went in, how good the links are (when the simulator's truth is there), the
trained match weights, cluster sizes, completeness and staleness per field before and after,
and the clusters the model was least sure about, with their records side by side.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from features.unify import UnifyConfig, UnifyResult

SHOWN_CLUSTERS = 8
WEIGHT_CLIP = 20.0
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1250px;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px} th,td{border:1px solid #ddd;padding:4px 9px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .good{color:#17803d;font-weight:600} .bad{color:#b42318;font-weight:600}
.cards{display:flex;gap:14px;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:24px} .note{color:#555;font-size:13px;max-width:900px} img{max-width:100%}
.cluster{margin:1em 0 1.4em 0} .cluster h3{margin:.2em 0;font-size:15px}
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(frame: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = row[c]
            text = "" if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT else v
            if isinstance(text, float):
                text = f"{text:.4f}" if abs(text) < 10 else f"{text:,.0f}"
            elif isinstance(text, pd.Timestamp):
                text = text.date().isoformat()
            cls = "l" if c in left else ""
            cells.append(f'<td class="{cls}">{html.escape(str(text))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _weights_chart(weights: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if weights.empty:
        return "<p>No trained match weights.</p>"
    w = weights.iloc[::-1]
    labels = [f"{c}: {lvl}"[:60] for c, lvl in zip(w["comparison"], w["level"], strict=True)]
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(w) + 1))
    colors = ["#2e7d32" if x > 0 else "#c62828" for x in w["weight"]]
    # A level EM almost never saw among matches gets a huge negative weight; clip so the rest stays readable.
    shown = w["weight"].clip(-WEIGHT_CLIP, WEIGHT_CLIP)
    ax.barh(range(len(w)), shown, color=colors)
    for y, (raw, bar) in enumerate(zip(w["weight"], shown, strict=True)):
        if raw != bar:
            ax.annotate(f"{raw:.0f} (clipped)", (bar, y), xytext=(4, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(w)), labels, fontsize=8)
    ax.axvline(0, color="#444", lw=0.8)
    ax.set_xlabel("partial match weight = log2(m / u)")
    ax.set_title("Trained match weights per comparison level")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _cluster_chart(sizes: pd.Series) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sizes.value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="#1f6feb")
    ax.set_yscale("log")
    ax.set_xlabel("source records per customer")
    ax.set_ylabel("customers (log scale)")
    ax.set_title("Cluster sizes")
    for x, y in zip(counts.index.astype(str), counts.to_numpy(), strict=True):
        ax.annotate(f"{y:,}", (x, y), ha="center", va="bottom", fontsize=8)
    return _png(fig)


def _completeness(result: UnifyResult, config: UnifyConfig) -> pd.DataFrame:
    recs, cust = result.records, result.customers
    rows = []
    for name in config.fields:
        if name not in recs:
            continue
        held = recs[name].notna()
        imputed = cust.get(f"{name}_imputed", pd.Series(False, index=cust.index)).astype(bool)
        row: dict[str, Any] = {"field": name}
        for system in config.systems:
            in_sys = recs["source_system"] == system
            holds = name in result.columns.get(system, ())
            row[f"{system} filled"] = float(held[in_sys].mean()) if in_sys.any() and holds else "not held"
        after = cust[name].notna() if name in cust else pd.Series(False, index=cust.index)
        row["golden filled"] = float(after.mean())
        row["of which imputed"] = float(imputed.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _staleness(result: UnifyResult, config: UnifyConfig) -> pd.DataFrame:
    recs, cust = result.records, result.customers
    rows = []
    for name, rule in config.fields.items():
        if rule.stale_after_days is None or rule.as_of not in recs or name not in recs:
            continue
        held = recs[name].notna()
        age = (result.as_of - pd.to_datetime(recs.loc[held, rule.as_of])).dt.days
        g_age = cust.get(f"{name}_age_days")
        row = {
            "field": name,
            "stale after (days)": rule.stale_after_days,
            "source records stale": float((age > rule.stale_after_days).mean()) if len(age) else np.nan,
            "source median age (days)": float(age.median()) if len(age) else np.nan,
            "golden stale": float(cust[f"{name}_stale"].mean()) if f"{name}_stale" in cust else np.nan,
            "golden median age (days)": float(pd.to_numeric(g_age).median()) if g_age is not None else np.nan,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _least_sure(result: UnifyResult) -> str:
    cust = result.customers
    multi = cust[cust["n_source_records"] > 1].nsmallest(SHOWN_CLUSTERS, "link_confidence")
    if multi.empty:
        return "<p>No multi-record clusters.</p>"
    cols = ["source_system", "record_id", "first_name", "last_name", "birth_date", "phone", "email", "postcode"]
    parts = []
    for _, c in multi.iterrows():
        recs = result.records.loc[result.records["customer_id"] == c["customer_id"], cols]
        parts.append(
            f'<div class="cluster"><h3>customer {int(c["customer_id"])}: {len(recs)} records, '
            f"weakest link probability {c['link_confidence']:.3f}</h3>{_table(recs, left=tuple(cols))}</div>"
        )
    return "".join(parts)


def _metrics_section(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "<p>No truth crosswalk beside the sources: linkage accuracy is not measured.</p>"
    rows = []
    for label, key in (("Splink (this run)", "linkage"), ("naive: exact name + birth date", "naive")):
        m = metrics[key]
        rows.append(
            {
                "method": label,
                "precision": m["precision"],
                "recall": m["recall"],
                "F1": m["f1"],
                "predicted pairs": m["predicted_pairs"],
                "true pairs": m["true_pairs"],
            }
        )
    out = _table(pd.DataFrame(rows), left=("method",))
    gain = metrics["f1_gain_over_naive"]
    out += f'<p>F1 gain over the naive rule: <span class="{"good" if gain >= 0.10 else "bad"}">{gain:+.4f}</span></p>'
    golden = metrics.get("golden", {})
    acc = {k: v for k, v in golden.items() if isinstance(v, float)}
    if acc:
        out += "<h3>Golden record: share of customers whose value equals the true current value</h3>"
        rows = [{"profile": "golden record (survivorship)", **acc}]
        if golden.get("core_banking_only"):
            rows.append({"profile": "core-banking record alone", **golden["core_banking_only"]})
        out += _table(pd.DataFrame(rows), left=("profile",))
    comp = golden.get("completion")
    if comp:
        better = comp["accuracy"] > comp["most_common_baseline"]
        out += (
            f"<p>Income band completed for {comp['imputed']:,} customers no system held it for: accuracy "
            f'<span class="{"good" if better else "bad"}">{comp["accuracy"]:.3f}</span> against '
            f"{comp['most_common_baseline']:.3f} for always guessing the most common band "
            f"('{html.escape(str(comp['most_common_value']))}').</p>"
        )
    return out


def render_report(result: UnifyResult, config: UnifyConfig) -> str:
    from features.unify import match_weights

    cust = result.customers
    sizes = cust["n_source_records"]
    cards = {
        "source records": f"{sum(result.rows.values()):,}",
        "customers": f"{len(cust):,}",
        "multi-record customers": f"{int((sizes > 1).sum()):,}",
        "income band imputed": f"{int(cust.get('income_band_imputed', pd.Series(dtype=bool)).sum()):,}",
        "income band stale": f"{int(cust.get('income_band_stale', pd.Series(dtype=bool)).sum()):,}",
    }
    if result.metrics is not None:
        cards["linkage F1"] = f"{result.metrics['linkage']['f1']:.4f}"
        cards["naive F1"] = f"{result.metrics['naive']['f1']:.4f}"
    card_html = "".join(f'<div class="card">{html.escape(k)}<b>{v}</b></div>' for k, v in cards.items())
    systems = pd.DataFrame(
        [{"system": s, "records": n, "trust": config.systems[s].trust} for s, n in result.rows.items()]
    )
    combos = cust["source_systems"].value_counts().rename_axis("systems holding the customer").reset_index()
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    weights = match_weights(result.linkage.model)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>clientlens unify: data quality</title>
<style>{CSS}</style></head><body>
<h1>One customer, one profile: data-quality report</h1>
<p class="sub">Staleness measured at {result.as_of.date()} &middot; clustered at match probability &ge;
{config.match_threshold} &middot; {html.escape(timing)}</p>
<div class="cards">{card_html}</div>
<h2>Sources</h2>{_table(systems, left=("system",))}
<h2>Linkage quality</h2>{_metrics_section(result.metrics)}
<p class="note">Pairwise: a pair of source records is a true match when both belong to the same true customer;
precision and recall count pairs, so a wrongly merged pair of big clusters costs more than a single miss.</p>
<h2>Match weights</h2>
<p class="note">How much each comparison outcome moves the odds that two records are the same person (u from random
sampling, m from expectation maximisation on two blocking passes). Green raises, red lowers.</p>
{_weights_chart(weights)}
<h2>Clusters</h2>{_cluster_chart(sizes)}{_table(combos, left=("systems holding the customer",))}
<h2>Completeness: share of records (per system) and of golden records holding each field</h2>
{_table(_completeness(result, config), left=("field",))}
<h2>Staleness</h2>
<p class="note">Age of the value at the as-of date, from the field's own date (income band declared on, risk
questionnaire taken on). The golden record keeps the freshest value a system holds; what is still old is flagged
(<code>income_band_stale</code>, <code>income_band_age_days</code>).</p>
{_table(_staleness(result, config), left=("field",))}
<h2>Least-sure clusters</h2>
<p class="note">Customers whose weakest internal link had the lowest match probability: where a person should
look first.</p>
{_least_sure(result)}
</body></html>"""
