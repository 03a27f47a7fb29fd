"""Benchmark `clientlens assign`: 100,000 customers x 500 advisors, the LP solver vs a greedy
assignment on the same data.

A synthetic scored book (the arbitration's real output on simulated score columns: tier mix
80/17/3 %, AUM log-normal within each tier, four regions) and an advisors table whose capacity
binds (too few wealth advisors and contact slots for everyone). Prints a table and writes
benchmarks/out/bench_assign.json.

    .venv/bin/python benchmarks/bench_assign.py [--customers 100000] [--advisors 500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("metro", "urban", "suburban", "rural")


def synthetic_scores(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Score columns as `clientlens score` writes them (plus the features arbitration reads)."""
    rng = np.random.default_rng(seed)
    tier = rng.choice(["mass", "affluent", "hnw"], size=n, p=[0.80, 0.17, 0.03]).astype(object)
    lo = np.select([tier == "mass", tier == "affluent"], [1e3, 5e5], 1e7)
    hi = np.select([tier == "mass", tier == "affluent"], [5e5, 1e7], 2e8)
    aum = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    stated = rng.choice(["conservative", "balanced", "aggressive"], size=n, p=[0.45, 0.4, 0.15]).astype(object)
    p_aggr = rng.beta(1.5, 5, size=n)
    return {
        "customer_id": np.arange(n),
        "tier": tier,
        "stated_risk": stated,
        "lifecycle_stage": rng.choice(["young_professional", "family_growth", "retirement"], size=n).astype(object),
        "aum": aum,
        "aum_change_3m": rng.normal(0, 0.1, size=n),
        "churn_proba": rng.beta(1.2, 8, size=n),
        "upgrade_proba": rng.beta(1, 12, size=n),
        "risk_proba_aggressive": p_aggr,
        "hidden_aggressive": (stated == "conservative") & (p_aggr > 0.5),
        "payroll_at_bank": rng.random(n) < 0.5,
        "mortgage_balance": np.where(rng.random(n) < 0.3, 2e5, 0.0),
        "region": rng.choice(REGIONS, size=n).astype(object),
    }


def synthetic_advisors(m: int, n_customers: int, seed: int = 1, coverage: float = 0.85) -> pd.DataFrame:
    """Private bankers for the HNW book (most senior), wealth advisors for `coverage` of the affluent."""
    rng = np.random.default_rng(seed)
    n_pb = max(1, int(round(m * 0.24)))
    role = np.array(["private_banker"] * n_pb + ["wealth_advisor"] * (m - n_pb), dtype=object)
    seniority = np.where(
        role == "private_banker",
        rng.choice([3, 6, 8, 12], size=m, p=[0.15, 0.35, 0.3, 0.2]),
        rng.integers(1, 15, size=m),
    )
    wa_cap = max(1, int(0.17 * n_customers * coverage / max(1, m - n_pb)))
    return pd.DataFrame(
        {
            "advisor_id": [f"A{i:04d}" for i in range(m)],
            "role": role,
            "seniority_years": seniority.astype(float),
            "max_clients": np.where(role == "private_banker", 30, min(wa_cap, 300)),
            "region": rng.choice(REGIONS, size=m).astype(object),
        }
    )


def run_scenario(scores, advisors, policy, args, scenario: str, coverage: float) -> dict:
    from training.assign import assign, book_inputs, build_problem, check_advisors, greedy, objective

    t = time.perf_counter()
    _plan, s = assign(scores, advisors, policy, with_greedy=False)
    t_assign = time.perf_counter() - t

    classes, ev, region = book_inputs(scores)
    p = build_problem(classes, ev, region, check_advisors(advisors, policy), policy)
    t = time.perf_counter()
    g = objective(p, greedy(p))
    t_greedy = time.perf_counter() - t
    hnw = s["by_class"]["hnw"]
    result = {
        "scenario": scenario,
        "wealth_advisor_coverage_of_affluent": coverage,
        "customers": args.customers,
        "advisors": args.advisors,
        "variables": s["variables"],
        "pools": s["pools"],
        "assign_seconds": round(t_assign, 2),
        "assign_breakdown": s["seconds"],
        "objective": s["objective"],
        "lp_bound": s["lp_bound"],
        "gap": s["gap"],
        "greedy_objective": round(g, 2),
        "greedy_seconds": round(t_greedy, 2),
        "value_ratio_lp_vs_greedy": s["objective"] / g,
        "advisors_over_capacity": s["advisors_over_capacity"],
        "hnw_on_senior_private_banker": hnw["on_qualified_advisor"],
        "hnw_customers": hnw["customers"],
        "channel_slots": s["channel_slots"],
        "not_fitted": {c: v["not_fitted"] for c, v in s["by_class"].items()},
        "lost_value": s["lost_value"],
    }
    rows = [
        ("scenario", f"{scenario} (wealth advisors hold {coverage:.0%} of the affluent book)"),
        ("customers x advisors", f"{args.customers:,} x {args.advisors}"),
        ("variables / pools", f"{s['variables']:,} / {s['pools']}"),
        ("assign seconds (build / LP / total)", f"{s['seconds']['build']} / {s['seconds']['lp']} / {t_assign:.2f}"),
        ("objective (LP rounded)", f"{s['objective']:,.0f}"),
        ("LP-relaxation bound", f"{s['lp_bound']:,.0f}"),
        ("gap to bound", f"{s['gap']:.2e}"),
        ("greedy objective", f"{g:,.0f} ({t_greedy:.2f} s)"),
        ("value ratio LP / greedy", f"{s['objective'] / g:.4f}"),
        ("advisors over capacity", str(s["advisors_over_capacity"])),
        ("HNW on senior private banker", f"{hnw['on_qualified_advisor']:,} of {hnw['customers']:,}"),
        ("not fitted by class", json.dumps(result["not_fitted"])),
    ]
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()
    return result


def main() -> None:
    from benchmarks.machine import machine
    from training.policy import arbitrate, default_policy

    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--advisors", type=int, default=500)
    args = ap.parse_args()
    policy = default_policy()
    cols = synthetic_scores(args.customers)
    t = time.perf_counter()
    arb = arbitrate(cols, args.customers, policy)
    t_arb = time.perf_counter() - t
    scores = pd.DataFrame({"customer_id": cols["customer_id"], "region": cols["region"], **arb})
    results = {}
    for scenario, coverage in (("base", 0.85), ("tight", 0.4)):
        advisors = synthetic_advisors(args.advisors, args.customers, coverage=coverage)
        results[scenario] = run_scenario(scores, advisors, policy, args, scenario, coverage)
        results[scenario]["arbitrate_seconds"] = round(t_arb, 2)
    out_dir = Path(__file__).parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench_assign.json").write_text(json.dumps({"machine": machine(), **results}, indent=2, default=str))


if __name__ == "__main__":
    main()
