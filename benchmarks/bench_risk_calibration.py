"""Why the risk posterior is not calibrated against the truth (#12): `python -m benchmarks.bench_risk_calibration`.

`python -m benchmarks.bench_risk_calibration FEATURES RAW --seed S` on a built feature folder
(`clientlens simulate --customers 3000 --months 18 --seed S --out RAW`, `clientlens features --raw RAW --out FEATURES`)
trains the shipped risk spec as `clientlens train risk --truth RAW/truth.parquet --trials 8 --timeout 40 --seed S`
does (same `fit_task` call), keeps the posterior's fitting rows, and measures over every customer at the test date
against `truth.latent_risk`:

- fitted vs true class shares, overall and per stated group, per-class reliability, top-label reliability;
- the profile log-likelihood of the EM fit along the questionnaire's lean (lean held fixed, everything else refitted):
  how well the data pin the lean, and with it where the class cuts sit in the book;
- DIAGNOSTICS THAT USE THE TRUTH (never candidates): the behaviour likelihood tempered by T (posterior
  prop. to prior x questionnaire x behaviour^(1/T)), alone and with the lean held at `--lean` (a value near the
  simulator's, in model units);
- class changes between the test date and `latest.parquet` (the simulator draws each customer's appetite once,
  so the true latent class never changes);
- `--correlated-residuals`: the spec trained with one residual covariance across the behaviour measures (a
  candidate: no truth);
- DIAGNOSTIC THAT SIMULATES A DATA SOURCE FROM THE TRUTH (what it would buy, never a candidate): an advisor's
  suitability review of a random `--anchor-share` of the customers, `cut(appetite + N(0, 0.3^2))` with the
  simulator's own cuts and no lean, given to the posterior's fit as anchor rows (`AppetitePosterior.fit(anchor=)`).

Prints the lines and writes `benchmarks/out/risk_calibration_s<SEED>.json`.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import training.appetite as appetite
from benchmarks.machine import machine
from core.metrics import hidden_aggressive_metrics, latent_class_metrics
from core.tasks import RISK_CLASSES

OUT_DIR = Path(__file__).resolve().parent / "out"


def train(
    features: Path, truth: pd.DataFrame, seed: int, correlated: bool = False
) -> tuple[Any, dict[str, np.ndarray]]:
    """The shipped risk model, and the rows its posterior was fitted on (raw scores, matrix, label)."""
    from training.spec import builtin_spec
    from training.train import fit_task

    captured: dict[str, np.ndarray] = {}
    fit = appetite.AppetitePosterior.fit

    def capture(self, raw, X, label, iterations=60, anchor=None):
        captured.update(raw=np.array(raw), X=np.array(X), label=np.array(label))
        return fit(self, raw, X, label, iterations, anchor)

    appetite.AppetitePosterior.fit = capture  # type: ignore[method-assign]
    try:
        spec = builtin_spec("risk", features)
        if correlated:
            assert spec.risk_posterior is not None
            posterior = spec.risk_posterior.model_copy(update={"correlated_residuals": True})
            spec = spec.model_copy(update={"risk_posterior": posterior})
        frame = pd.read_parquet(features / "panel.parquet")
        result = fit_task(spec, frame, seed=seed, trials=8, timeout=40, truth=truth, threads=1)
    finally:
        appetite.AppetitePosterior.fit = fit  # type: ignore[method-assign]
    return result.model, captured


def book(core, frame: pd.DataFrame, truth: pd.DataFrame) -> dict[str, np.ndarray]:
    pop = frame.merge(truth[["customer_id", "latent_risk"]], on="customer_id")
    X = core.matrix(pop)
    code = {c: i for i, c in enumerate(RISK_CLASSES)}
    return {"X": X, "raw": core.raw_from_matrix(X), "y": pop["latent_risk"].map(code).to_numpy(),
            "stated": pop["stated_risk"].map(code).to_numpy(), "ids": pop["customer_id"].to_numpy()}  # fmt: skip


def parts(post, raw: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log prior, log P(stated | a) and the behaviour's log density on the grid, per row."""
    inp = post.inputs(raw, X)
    mu = inp.profile @ post.theta_
    prior = -0.5 * (appetite.GRID[None, :] - mu[:, None]) ** 2
    quest = np.zeros_like(prior)
    for b in np.unique(inp.stale_bin):
        sd = float(post._stated_sd(np.array([b]))[0])
        table = post._ordinal(appetite.GRID - post.lean_, post.cuts_, sd)
        rows = (inp.stale_bin == b) & (inp.stated >= 0)
        quest[rows] += np.log(table[:, inp.stated[rows]]).T
    return prior, quest, post._loglik(inp, None) - prior - quest


def probabilities(post, raw: np.ndarray, X: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    prior, quest, behaviour = parts(post, raw, X)
    p = np.clip(post._weights(prior + quest + behaviour / temperature) @ post._class_mass(), 1e-6, None)
    return p / p.sum(axis=1, keepdims=True)


def scores(P: np.ndarray, data: dict[str, np.ndarray]) -> dict[str, float]:
    y, conservative = data["y"], data["stated"] == 0
    m = latent_class_metrics(y, P)
    ha = hidden_aggressive_metrics(y[conservative] == 2, P[conservative, 2])["hidden_aggressive_auc"]
    return {"accuracy": m["latent_risk_accuracy"], "macro_f1": m["latent_risk_macro_f1"],
            "ece": m["latent_risk_ece"], "hidden_aggressive_auc": ha,
            "mean_p": P.mean(axis=0).round(3).tolist()}  # fmt: skip


def fixed_lean_fit(post, captured: dict[str, np.ndarray], lean: float):
    """Refit the EM with the questionnaire's lean held at `lean` (the M-step's optimiser sees it as a constant)."""
    minimize = appetite.minimize

    def with_lean(fun, x0, **kw):
        res = minimize(lambda x: fun(np.concatenate([x[:2], [lean], x[3:]])), x0, **kw)
        res.x = np.concatenate([res.x[:2], [lean], res.x[3:]])
        return res

    appetite.minimize = with_lean  # type: ignore[assignment]
    try:
        return copy.deepcopy(post).fit(captured["raw"], captured["X"], captured["label"])
    finally:
        appetite.minimize = minimize  # type: ignore[assignment]


def review_anchor(core, panel: pd.DataFrame, truth: pd.DataFrame, X_fit: np.ndarray, share: float) -> np.ndarray:
    """USES THE TRUTH to simulate a data source: a random `share` of customers reviewed by an advisor, whose
    assessment is the true appetite cut at the simulator's cuts (no lean) with a small error; -1 elsewhere.
    Fitting rows are matched to customers by their exact model-matrix row."""
    from features.simulate import SimParams

    p = SimParams()
    rng = np.random.default_rng(123)
    appetite = truth.set_index("customer_id")["risk_appetite"]
    reviewed = rng.random(len(appetite)) < share
    assessed = np.searchsorted([p.appetite_cut_balanced, p.appetite_cut_aggressive],
                               appetite.to_numpy() + 0.3 * rng.standard_normal(len(appetite)))  # fmt: skip
    by_customer = pd.Series(np.where(reviewed, assessed, -1), index=appetite.index)
    key = [r.tobytes() for r in np.nan_to_num(core.matrix(panel), nan=-9e9)]
    ids = pd.Series(panel["customer_id"].to_numpy(), index=key)
    fit_ids = ids.reindex([r.tobytes() for r in np.nan_to_num(X_fit, nan=-9e9)]).to_numpy()
    return by_customer.reindex(fit_ids).fillna(-1).astype(int).to_numpy()


def reliability(P: np.ndarray, y: np.ndarray) -> dict[str, list]:
    out: dict[str, list] = {}
    conf, pred = P.max(axis=1), P.argmax(axis=1)
    for name, p, hit in [("top", conf, y == pred)] + [(c, P[:, j], y == j) for j, c in enumerate(RISK_CLASSES)]:
        bins = np.clip((p * 10).astype(int), 0, 9)
        out[name] = [(b / 10, round(float(p[bins == b].mean()), 3), round(float(hit[bins == b].mean()), 3),
                      int((bins == b).sum())) for b in range(10) if (bins == b).any()]  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", type=Path)
    ap.add_argument("raw", type=Path)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lean", type=float, default=0.9, help="lean held fixed in the truth-using diagnostic")
    ap.add_argument("--no-profile", action="store_true", help="skip the lean profile (three EM refits)")
    ap.add_argument("--correlated-residuals", action="store_true", help="train with one residual covariance")
    ap.add_argument("--anchor-share", type=float, default=0.05, help="reviewed share in the anchor diagnostic")
    args = ap.parse_args()
    truth = pd.read_parquet(args.raw / "truth.parquet")
    core, captured = train(args.features, truth, args.seed, args.correlated_residuals)
    post = core.calibrator
    panel = pd.read_parquet(args.features / "panel.parquet")
    test = book(core, panel[panel["as_of"] == panel["as_of"].max()], truth)
    later = book(core, pd.read_parquet(args.features / "latest.parquet"), truth)
    P = post.transform(test["raw"], test["X"])
    y, stated = test["y"], test["stated"]
    res: dict[str, Any] = {"machine": machine(), "seed": args.seed, "customers": int(len(y))}
    res["fit"] = {"cuts": post.cuts_.round(3).tolist(), "lean": round(post.lean_, 3),
                  "questionnaire_sd": round(post.q_sd_, 3), "emission_sd": post.emission_sd_.round(3).tolist()}  # fmt: skip
    res["shipped"] = scores(P, test)
    res["true_shares"] = (np.bincount(y, minlength=3) / len(y)).round(3).tolist()
    res["by_stated"] = {}
    for j, c in enumerate(RISK_CLASSES):
        group = stated == j
        true_mix = np.bincount(y[group], minlength=3) / group.sum()
        res["by_stated"][c] = {"mean_p": P[group].mean(axis=0).round(3).tolist(), "true": true_mix.round(3).tolist()}
    res["reliability"] = reliability(P, y)
    res["lean_profile"] = []
    for lean in [] if args.no_profile else sorted({round(post.lean_, 2), args.lean, args.lean + 0.3}):
        fitted = fixed_lean_fit(post, captured, lean)
        row = {"lean": lean, "loglik": round(fitted.loglik_, 1), "cuts": fitted.cuts_.round(2).tolist()}
        row["T1"] = scores(probabilities(fitted, test["raw"], test["X"]), test)
        if lean == args.lean:
            row["T3 (uses truth)"] = scores(probabilities(fitted, test["raw"], test["X"], 3.0), test)
        res["lean_profile"].append(row)
    res["tempered (uses truth)"] = {T: scores(probabilities(post, test["raw"], test["X"], T), test) for T in (2.0, 3.0)}
    anchor = review_anchor(core, panel, truth, captured["X"], args.anchor_share)
    anchored = copy.deepcopy(post).fit(captured["raw"], captured["X"], captured["label"], anchor=anchor)
    res["review anchor (simulated from truth)"] = {
        "share": args.anchor_share, "fitting_rows": int((anchor >= 0).sum()), "lean": round(anchored.lean_, 3),
        "cuts": anchored.cuts_.round(3).tolist(), "anchor_sd": round(anchored.anchor_sd_, 3),
        "T1": scores(probabilities(anchored, test["raw"], test["X"]), test),
        "temperature (chosen on the review rows)": anchored.temperature_,
        "at that temperature": scores(anchored.transform(test["raw"], test["X"]), test),
    }  # fmt: skip
    # class changes between the test date and the latest book (same customers)
    a = pd.Series(P.argmax(axis=1), index=test["ids"])
    b = pd.Series(post.transform(later["raw"], later["X"]).argmax(axis=1), index=later["ids"])
    ids = a.index.intersection(b.index)
    truth_class = pd.Series(y, index=test["ids"]).loc[ids].to_numpy()
    moved = a.loc[ids].to_numpy() != b.loc[ids].to_numpy()
    res["class_changes"] = {
        "customers": int(len(ids)), "predicted": int(moved.sum()), "true": 0,
        "right_before": float((a.loc[ids].to_numpy()[moved] == truth_class[moved]).mean()),
        "right_after": float((b.loc[ids].to_numpy()[moved] == truth_class[moved]).mean()),
        "from_to": pd.crosstab(a.loc[ids][moved].map(dict(enumerate(RISK_CLASSES))),
                               b.loc[ids][moved].map(dict(enumerate(RISK_CLASSES)))).to_dict(),
    }  # fmt: skip
    # proposals for reclassify (not built there): a change only past a margin, or both dates' evidence pooled
    Pa = pd.DataFrame(P, index=test["ids"]).loc[ids].to_numpy()
    Pb = pd.DataFrame(post.transform(later["raw"], later["X"]), index=later["ids"]).loc[ids].to_numpy()
    old, new, rows = Pa.argmax(axis=1), Pb.argmax(axis=1), np.arange(len(ids))
    for margin in (0.1, 0.2, 0.3):
        kept = np.where(moved & (Pb[rows, new] - Pb[rows, old] > margin), new, old)
        res["class_changes"][f"margin_{margin}"] = {"changes": int((kept != old).sum()),
                                                    "accuracy_later": float((kept == truth_class).mean())}  # fmt: skip
    pooled = np.log(Pa) + np.log(Pb)
    res["class_changes"]["accuracy_later_shipped"] = float((new == truth_class).mean())
    res["class_changes"]["accuracy_pooled"] = float((pooled.argmax(axis=1) == truth_class).mean())
    OUT_DIR.mkdir(exist_ok=True)
    tag = f"{'_corr' if args.correlated_residuals else ''}{'_quick' if args.no_profile else ''}"
    (OUT_DIR / f"risk_calibration_s{args.seed}{tag}.json").write_text(json.dumps(res, indent=1, default=str))
    for key in ("fit", "shipped", "true_shares", "by_stated", "lean_profile", "tempered (uses truth)",
                "review anchor (simulated from truth)", "class_changes"):  # fmt: skip
        print(f"{key}: {json.dumps(res[key], default=str)}")


if __name__ == "__main__":
    main()
