"""Customers to advisors and channels under capacity: optimality on a small book (vs an exact
MILP), the rules (capacity, seniority, coverage), and clear errors for advisors files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from core.errors import InputError
from training.assign import assign, book_inputs, build_problem, check_advisors, greedy, objective
from training.policy import Policy, default_policy


def _policy(**channel_slots) -> Policy:
    raw = default_policy().model_dump()
    for ch, slots in channel_slots.items():
        raw["channels"][ch]["weekly_slots"] = slots
    return Policy.model_validate(raw)


def _book(n: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cls = rng.choice(["mass", "affluent", "hnw"], size=n, p=[0.5, 0.35, 0.15])
    ev = np.exp(rng.normal(np.select([cls == "mass", cls == "affluent"], [4, 7], 9), 1.0))
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "service_class": cls,
            "expected_value": ev,
            "region": rng.choice(["north", "south"], size=n),
        }
    )


def _advisors() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "advisor_id": ["pb1", "pb2", "pb3", "wa1", "wa2"],
            "role": ["private_banker", "private_banker", "private_banker", "wealth_advisor", "wealth_advisor"],
            "seniority_years": [8, 6, 2, 3, 10],  # pb3 is too junior for HNW
            "max_clients": [8, 8, 6, 10, 12],
            "region": ["north", "south", "north", "north", "south"],
        }
    )


def _exact_optimum(p) -> float:
    """The per-customer problem solved exactly (SciPy's MILP), independent of the bucketed LP."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix

    from training.assign import _coupling

    m = len(p.value)
    A_c, b_c = _coupling(p, p.opt, p.slots, p.var_channel, [c[0] for c in p.coverage], m)
    A_cust = csr_matrix((np.ones(m), (p.cust, np.arange(m))), shape=(p.n, m))
    res = milp(
        -p.value,
        constraints=[LinearConstraint(A_cust, -np.inf, 1), LinearConstraint(A_c, -np.inf, b_c)],
        integrality=np.ones(m),
        bounds=Bounds(0, 1),
    )
    assert res.status == 0
    return -res.fun


def test_assignment_is_optimal_within_capacity_and_seniority():
    policy = _policy(digital=20, phone=1.5, meeting=6)  # every limit binds on this small book
    book, team = _book(), _advisors()
    out, s = assign(book, team, policy, with_greedy=True)
    classes, ev, region = book_inputs(book)
    exact = _exact_optimum(build_problem(classes, ev, region, check_advisors(team, policy), policy))
    assert s["lp_bound"] >= exact - 1e-6  # the bound bounds every assignment
    assert s["objective"] >= exact * (1 - 1e-3)
    assert s["objective"] >= s["greedy_objective"] - 1e-6
    # nobody over capacity; HNW only with a private banker of 5+ years
    load = out["advisor_id"].value_counts()
    caps = team.set_index("advisor_id")["max_clients"]
    assert (load <= caps[load.index]).all() and s["advisors_over_capacity"] == 0
    hnw = out[(out["service_class"] == "hnw") & out["advisor_id"].notna()]
    assert set(hnw["advisor_id"]) <= {"pb1", "pb2"}
    n_hnw = int((out["service_class"] == "hnw").sum())
    assert len(hnw) == min(n_hnw, 16, int(6 / 0.25))
    # slots per channel per week are respected, and what did not fit has a cost
    for ch, u in s["channel_slots"].items():
        assert u["used"] <= u["limit"] + 1e-6, ch
    unserved = out[out["service_option"].isna()]
    assert len(unserved) > 0 and np.isclose(unserved["lost_value"].sum(), unserved["best_value"].sum())
    assert s["lost_value"] == pytest.approx(out["lost_value"].sum(), rel=1e-6)


def test_greedy_is_a_feasible_baseline():
    policy = _policy(digital=20, phone=1.5, meeting=6)
    book, team = _book(), _advisors()
    classes, ev, region = book_inputs(book)
    p = build_problem(classes, ev, region, check_advisors(team, policy), policy)
    chosen = greedy(p)
    served = chosen[chosen >= 0]
    assert len(np.unique(p.cust[served])) == len(served)
    assert np.all(np.bincount(p.opt[served], minlength=len(p.options)) <= [o.capacity for o in p.options])
    assert objective(p, chosen) > 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(columns="seniority_years"), "seniority_years"),
        (lambda t: t.assign(max_clients=[40, 8, 6, 10, 12]), r"max_clients, row 0 .*40 > 30"),
        (
            lambda t: t.assign(role=["private_banker", "banker", "x", "wealth_advisor", "wealth_advisor"]),
            "column role, row 1",
        ),
        (
            lambda t: t.assign(seniority_years=[3, 2, 2, 3, 10]),
            r"cannot serve the book: private_banker advisors with seniority_years >= 5",
        ),
    ],
)
def test_an_advisors_file_that_cannot_serve_the_book_names_the_field(edit, message):
    with pytest.raises(InputError, match=message):
        assign(_book(), edit(_advisors()), default_policy())


def test_cli_assign_writes_the_plan_and_exits_2_on_a_bad_advisors_file(tmp_path):
    from clientlens.cli import app

    runner = CliRunner()
    _book().to_parquet(tmp_path / "scores.parquet")
    _advisors().to_csv(tmp_path / "advisors.csv", index=False)
    args = ["assign", "--scores", str(tmp_path / "scores.parquet"), "--out", str(tmp_path / "plan.parquet"), "--json"]
    ok = runner.invoke(app, [*args, "--advisors", str(tmp_path / "advisors.csv")])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["gap"] < 0.01 and len(pd.read_parquet(tmp_path / "plan.parquet")) == 120
    _advisors().assign(max_clients=[40, 8, 6, 10, 12]).to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, [*args, "--advisors", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "max_clients" in bad.output
