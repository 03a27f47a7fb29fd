"""Evaluation figures (matplotlib Agg): ROC/PR vs baseline, reliability, confusion matrix, importance.

Each function takes arrays and returns a Figure; `figures(result)` builds the set for a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def roc_pr(y: np.ndarray, score: np.ndarray, base: np.ndarray, title: str):
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.5))
    for s, name, style in ((score, "model", "-"), (base, "baseline", "--")):
        fpr, tpr, _ = roc_curve(y, s)
        a1.plot(fpr, tpr, style, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        prec, rec, _ = precision_recall_curve(y, s)
        a2.plot(rec, prec, style, label=name)
    a1.plot([0, 1], [0, 1], ":", color="grey")
    a1.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC — {title}")
    a2.axhline(y.mean(), ls=":", color="grey", label=f"base rate {y.mean():.3f}")
    a2.set(xlabel="recall", ylabel="precision", title=f"Precision-recall — {title}")
    a1.legend(loc="lower right")
    a2.legend(loc="upper right")
    fig.tight_layout()
    return fig


def roc_ovr(y: np.ndarray, proba: np.ndarray, base: np.ndarray, classes: list[str], title: str):
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, c in enumerate(classes):
        yi = (y == i).astype(int)
        if yi.min() == yi.max():
            continue
        fpr, tpr, _ = roc_curve(yi, proba[:, i])
        line = ax.plot(fpr, tpr, label=f"{c} model AUC {roc_auc_score(yi, proba[:, i]):.3f}")[0]
        fpr, tpr, _ = roc_curve(yi, base[:, i])
        ax.plot(fpr, tpr, "--", color=line.get_color(), label=f"{c} baseline AUC {roc_auc_score(yi, base[:, i]):.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"One-vs-rest ROC — {title}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def reliability(y: np.ndarray, raw: np.ndarray, cal: np.ndarray, title: str, bins: int = 10, min_rows: int = 30):
    """Reliability diagram of the positive class (binary) or top-label confidence (multiclass)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for p, name in ((raw, "raw LightGBM"), (cal, "calibrated")):
        if p.ndim == 2 and p.shape[1] == 2:
            conf, hit = p[:, 1], y.astype(float)
        else:
            conf, hit = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
        edges = np.linspace(0, 1, bins + 1)
        idx = np.clip(np.searchsorted(edges[1:-1], conf, side="right"), 0, bins - 1)
        used = [b for b in range(bins) if (idx == b).sum() >= min_rows]  # sparse bins are noise
        xs = [conf[idx == b].mean() for b in used]
        ys = [hit[idx == b].mean() for b in used]
        sizes = [15 + 200 * (idx == b).mean() for b in used]
        ece = _ece(conf, hit, idx, [b for b in range(bins) if (idx == b).any()])
        line = ax.plot(xs, ys, "-", label=f"{name} (ECE {ece:.3f})")[0]
        ax.scatter(xs, ys, s=sizes, color=line.get_color(), alpha=0.7)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    ax.set(
        xlabel=f"predicted probability (bins of width 0.1 with >= {min_rows} rows)",
        ylabel="observed frequency",
        title=f"Reliability — {title}",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def _ece(conf: np.ndarray, hit: np.ndarray, idx: np.ndarray, used: list[int]) -> float:
    return float(sum((idx == b).mean() * abs(conf[idx == b].mean() - hit[idx == b].mean()) for b in used))


def confusion(y: np.ndarray, pred: np.ndarray, classes: list[str], title: str):
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    cm = confusion_matrix(y, pred, labels=list(range(len(classes))))
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black"
            )
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="actual", title=f"Confusion matrix — {title}")
    fig.tight_layout()
    return fig


def importance(
    names: list[str],
    gain: np.ndarray,
    title: str,
    top: int = 20,
    xlabel: str = "share of total gain",
    kind: str = "gain",
):
    plt = _plt()
    order = np.argsort(gain)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(order) + 1.2))
    ax.barh([names[i] for i in order], gain[order] / max(gain.sum(), 1e-12))
    ax.set(xlabel=xlabel, title=f"Feature importance ({kind}) — {title}")
    fig.tight_layout()
    return fig


def predicted_vs_actual(y: np.ndarray, pred: np.ndarray, title: str):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y, pred, s=4, alpha=0.4)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], ":", color="grey")
    ax.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual — {title}")
    fig.tight_layout()
    return fig


def figures(result) -> dict[str, Figure]:
    """All figures of a `TrainResult`, keyed by artefact file name."""
    m, title = result.model, result.spec.name
    y, p, raw, base = result.y_test, result.proba_test, result.raw_test, result.baseline_test
    out: dict[str, Figure] = {}
    if m.kind == "binary":
        out["roc_pr.png"] = roc_pr(y, p[:, 1], base[:, 1], title)
        out["calibration.png"] = reliability(y, raw, p, title)
        out["confusion_matrix.png"] = confusion(
            y.astype(int),
            (p[:, 1] >= m.thresholds.get("positive", 0.5)).astype(int),
            ["negative", "positive"],
            f"{title} @ {m.thresholds.get('positive', 0.5):.2f}",
        )
    elif m.kind in ("multiclass", "ordinal"):
        out["roc_ovr.png"] = roc_ovr(y.astype(int), p, base, m.classes, title)
        if m.kind == "multiclass":  # an ordinal model's raw score is binary (top class): no per-class curve
            out["calibration.png"] = reliability(y.astype(int), raw, p, title)
        out["confusion_matrix.png"] = confusion(y.astype(int), p.argmax(axis=1), m.classes, title)
    else:
        out["predicted_vs_actual.png"] = predicted_vs_actual(y, p, title)
    if m.prior is not None and result.reference is not None and len(result.reference):
        # boosted from a prior: the trees' gain would hide the starting score, which carries most of the
        # ranking; show each feature's mean |contribution| to the log-odds (trees + its prior share)
        share = np.abs(m.contributions(m.matrix(result.reference))).mean(axis=0)
        out["importance.png"] = importance(
            m.features, share, title, xlabel="share of mean |contribution| (log-odds)", kind="trees + starting score"
        )
    else:
        out["importance.png"] = importance(m.features, m.booster.feature_importance(importance_type="gain"), title)
    return out
