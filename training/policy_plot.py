"""The distribution of next actions by class on a scored book (table + a stacked-bar plot).

.venv/bin/python -m training.policy_plot --scores scores.parquet --out docs/policy_actions.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from core.tasks import NEXT_ACTION_COLUMN, SERVICE_CLASS_COLUMN, TIER_CLASSES


def action_mix(scores: pd.DataFrame) -> pd.DataFrame:
    """Share of each class's customers per next action (columns: classes, lowest first)."""
    mix = pd.crosstab(scores[NEXT_ACTION_COLUMN], scores[SERVICE_CLASS_COLUMN], normalize="columns")
    return mix[[c for c in TIER_CLASSES if c in mix.columns]]


def plot_action_mix(mix: pd.DataFrame, counts: pd.Series, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = mix.max(axis=1).sort_values(ascending=False).index
    mix = mix.loc[order]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    cmap = plt.get_cmap("tab20")
    bottom = pd.Series(0.0, index=mix.columns)
    for k, action in enumerate(mix.index):
        ax.bar(mix.columns, mix.loc[action], bottom=bottom, color=cmap(k % 20), label=action, width=0.6)
        for cls in mix.columns:
            share = mix.loc[action, cls]
            if share >= 0.06:
                ax.text(cls, bottom[cls] + share / 2, f"{share:.0%}", ha="center", va="center", fontsize=8)
        bottom += mix.loc[action]
    ax.set_xticks(range(len(mix.columns)), [f"{c}\n({counts.get(c, 0):,} customers)" for c in mix.columns])
    ax.set_ylabel("share of the class's customers")
    ax.set_ylim(0, 1)
    ax.set_title("Next action by class (default service policy)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scores", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from core.io import read_table

    scores = read_table(args.scores, columns=[NEXT_ACTION_COLUMN, SERVICE_CLASS_COLUMN], what="--scores")
    mix = action_mix(scores)
    print((mix * 100).round(1).to_string())
    print("largest single-action share per class:", {c: f"{mix[c].max():.0%}" for c in mix.columns})
    plot_action_mix(mix, scores[SERVICE_CLASS_COLUMN].value_counts(), args.out)


if __name__ == "__main__":
    main()
