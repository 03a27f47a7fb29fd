"""Arbitration of a batch column by column (#18, `_ranked_columns`) against the row-by-row path it
replaced for batches (`_ranked_rows`, still the path of a few customers): the same ranked actions, reasons
and JSON, character for character, on hand-built, awkward and generated books; and the number formats it
builds from digit tables against Python's own formats on values chosen to sit on their edges."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import training.policy as P
from training.policy import Policy, arbitrate, customer_inputs

from .test_policy import _check_guard, customers, policies
from .test_policy_fast import _book, _policy


# -- the number formats ------------------------------------------------------------------------------
def _edge_values() -> np.ndarray:
    """Ties and near-ties of `.0f` / `.2f` (exact binary halves, decimal halves that are not exact), signed
    zeros, tiny, huge and non-finite values, the format limits (2**44, 2**53) and a spread of magnitudes."""
    rng = np.random.default_rng(18)
    exact_halves = [0.5, 1.5, 2.5, -2.5, 0.125, 0.375, 0.625, 0.875, 1.125, 2.0**-3, 1e15 + 0.5, 2.0**52 + 1]
    decimal_halves = [k / 100 + 0.005 for k in range(0, 300)] + [k + 0.5 for k in range(-20, 20)]
    near = [np.nextafter(v, s) for v in exact_halves + decimal_halves for s in (-np.inf, np.inf)]
    limits = [2.0**44, np.nextafter(2.0**44, 0), 2.0**53, np.nextafter(2.0**53, 0), 2.0**53 + 2, 1e300]
    special = [0.0, -0.0, -0.001, -0.004, -0.005, -0.006, 5e-324, -5e-324, np.nan, -np.nan, np.inf, -np.inf]
    spread = np.concatenate(
        [
            rng.uniform(0, 1, 2000),
            rng.uniform(-1, 1, 500),
            10.0 ** rng.uniform(-6, 16, 3000) * rng.choice([-1, 1], 3000),
            np.round(rng.uniform(0, 1e6, 1000), 3),  # values with few decimals (amounts, rates)
            rng.integers(0, 10**7, 500) / 8,  # exact eighths: binary ties of .0f and .2f
        ]
    )
    return np.concatenate([exact_halves, decimal_halves, near, limits, special, spread]).astype(np.float64)


FORMATS = {
    "thousands": (P._thousands, lambda v: f"{v:,.0f}"),
    "two_decimals": (P._two_decimals, lambda v: f"{v:.2f}"),
    "rounded_repr": (P._rounded_repr, lambda v: P._json_float(round(v, 2))),
    "percent": (P._percent, lambda v: f"{v:+.0%}"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_table_formats_are_pythons_formats(name):
    vectorised, python = FORMATS[name]
    x = _edge_values()
    if name == "percent":
        x = np.concatenate([x, np.linspace(-0.5, 0.5, 2001), np.arange(-100, 101) / 200])  # trends: +-50%
    want = [python(v) for v in x.tolist()]
    assert vectorised(x) == want
    assert vectorised(x[:1]) == want[:1] and vectorised(x[:0]) == []


def test_the_edge_values_do_catch_a_naive_rounding():
    """Mutation check: `np.rint(100 * x)` without the near-tie check, and numpy's own `np.round(x, 2)`,
    give other strings than Python on these values, so the test above can fail."""
    x = _edge_values()
    x = x[np.isfinite(x) & (np.abs(x) < 2.0**44)]
    cents = np.rint(np.abs(x) * 100.0).astype(np.int64)
    naive = [("-" if neg else "") + f"{c // 100}.{c % 100:02d}" for c, neg in zip(cents, np.signbit(x), strict=True)]
    assert naive != [f"{v:.2f}" for v in x.tolist()]
    assert [repr(float(v)) for v in np.round(x, 2)] != [repr(round(v, 2)) for v in x.tolist()]


# -- the ranked actions ------------------------------------------------------------------------------
def _both_paths(policy: Policy, cols: dict, as_json: bool):
    """`_ranked_columns` and `_ranked_rows` on the same matrices, each completed by `_default_rows`."""
    n = len(next(iter(cols.values())))
    inp = customer_inputs(cols, n)
    eligible, priority, prop, value = P._matrices(policy, cols, n, inp)
    ok = eligible & P.suitable_mask(P._plan(policy).level, P.allowed_level(inp["stated"]), inp["hidden"])
    order = np.argsort(-np.where(ok, priority, -np.inf), axis=1, kind="stable")[:, : policy.top_k]
    templates = P._reason_templates(policy, cols)
    out = []
    for path in (P._ranked_columns, P._ranked_rows):
        ranked = path(policy, templates, P._Scores(ok, order, priority, prop, value), inp, as_json)
        P._default_rows(policy, eligible, inp, ranked, as_json)
        out.append(ranked[:3])
    return out


def _assert_same(columns, rows) -> None:
    for got, want in zip(columns, rows, strict=True):
        assert got.dtype == want.dtype == object and got.shape == want.shape
        assert got.tolist() == want.tolist()


def _awkward_policy() -> Policy:
    """Names, a default action and a condition value that JSON must escape (quotes, backslash, non-ASCII)."""
    raw = _policy().model_dump()
    raw["actions"][-1]["name"] = 'r\u00e9gion "call"\\'
    raw["actions"][-2]["when"][0]["any_of"] = ["salaried", 'ret"ired', "\u00e9"]
    raw["default_action"] = 'as "usual" \u00e9t\u00e9\\'
    return Policy.model_validate(raw)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "dicts"])
@pytest.mark.parametrize("policy", ["shipped", "extended", "awkward"])
@pytest.mark.parametrize("columns", ["all", "no_lifecycle", "no_flags"])
def test_columns_path_equals_rows_path_on_the_hand_built_book(policy, columns, as_json):
    pol = {"shipped": P.default_policy(), "extended": _policy(), "awkward": _awkward_policy()}[policy]
    cols = _book()
    if columns == "no_lifecycle":
        cols.pop("lifecycle_stage")
    if columns == "no_flags":
        for c in ("hidden_aggressive", "payroll_at_bank", "risk_proba_aggressive", "region"):
            cols.pop(c)
    columns_out, rows_out = _both_paths(pol, cols, as_json)
    _assert_same(columns_out, rows_out)
    assert any(a == pol.default_action for a in rows_out[0]) and any(a != pol.default_action for a in rows_out[0])


def _generated_book(n: int, seed: int, *, awkward: bool = False) -> dict[str, np.ndarray]:
    """`n` customers drawn like a scored book (classes, stages, assessments, amounts, trends, propensities,
    flags) with missing values, extreme amounts and, if `awkward`, class / stage / assessment texts that
    JSON must escape."""
    rng = np.random.default_rng(seed)
    pick = lambda values, p=None: rng.choice(np.array(values, dtype=object), n, p=p)
    classes = ["mass", "affluent", "hnw", None] + (['pla"tinum', "\u00e9lite"] if awkward else [])
    stages = ["young_professional", "family_growth", "retirement", None] + (["ret\\ired"] if awkward else [])
    stated = ["conservative", "balanced", "aggressive", None] + (["bal\tanced"] if awkward else [])
    aum = 10.0 ** rng.uniform(2, 8, n)
    aum[rng.random(n) < 0.02] = np.nan
    aum[rng.random(n) < 0.01] = np.inf
    trend = rng.normal(0, 0.3, n)
    trend[rng.random(n) < 0.02] = np.nan
    churn = rng.beta(1, 6, n)
    churn[rng.random(n) < 0.02] = np.nan
    return {
        "tier": pick(classes),
        "stated_risk": pick(stated),
        "lifecycle_stage": pick(stages),
        "age": rng.uniform(18, 90, n),
        "occupation": pick(["salaried", "retired", "self_employed", None, "3"]),
        "region": pick(["metro", "rural", None]),
        "aum": aum,
        "aum_change_3m": trend,
        "churn_proba": churn,
        "upgrade_proba": rng.beta(1, 4, n),
        "risk_proba_aggressive": rng.beta(2, 3, n),
        "hidden_aggressive": rng.random(n) < 0.1,
        "payroll_at_bank": (rng.random(n) < 0.5).astype(np.float64),
        "mortgage_balance": np.where(rng.random(n) < 0.6, 0.0, 1e5),
    }


@pytest.mark.parametrize("awkward", [False, True], ids=["plain", "awkward_texts"])
@pytest.mark.parametrize("policy", ["shipped", "extended"])
def test_columns_path_equals_rows_path_on_generated_books(policy, awkward):
    pol = P.default_policy() if policy == "shipped" else _policy()
    for seed, n in ((0, 1), (1, 33), (2, 1000)):
        cols = _generated_book(n, seed, awkward=awkward)
        for as_json in (True, False):
            columns_out, rows_out = _both_paths(pol, cols, as_json)
            _assert_same(columns_out, rows_out)
    assert len({len(json.loads(a)) for a in arbitrate(cols, n, pol, as_json=True)["actions"]}) > 1


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "dicts"])
def test_a_batch_ranks_each_customer_as_alone(as_json):
    """`arbitrate` on 1,000 customers (the columns path) gives each row what the customer gets alone."""
    pol = _policy()
    cols = _generated_book(1000, 7)
    batch = arbitrate(cols, 1000, pol, as_json=as_json)
    for i in range(0, 1000, 37):
        alone = arbitrate({k: v[i : i + 1] for k, v in cols.items()}, 1, pol, as_json=as_json)
        for key, column in alone.items():
            assert column[0] == batch[key][i], (key, i)


def test_a_batch_without_any_ranked_action_gets_the_default_everywhere():
    raw = P.default_policy().model_dump()
    raw["actions"] = [a for a in raw["actions"] if a["name"] == "structured_product_offer"]
    pol = Policy.model_validate(raw)
    cols = _generated_book(100, 3)
    cols["stated_risk"] = np.full(100, "conservative", dtype=object)  # no one may have an R4 product
    columns_out, rows_out = _both_paths(pol, cols, True)
    _assert_same(columns_out, rows_out)
    assert set(columns_out[0].tolist()) == {pol.default_action}


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), customers())
def test_the_guard_and_the_rows_hold_in_batches_of_generated_policies_and_customers(policy, book):
    """The suitability property of tests/training/test_policy.py, on the columns path: the generated customers
    repeated past `SMALL_BATCH`; every row also equals the customer's own row-by-row ranking."""
    n, cols = book
    reps = P.SMALL_BATCH // n + 1
    big = {k: np.concatenate([v] * reps) for k, v in cols.items()}
    assert n * reps > P.SMALL_BATCH
    _check_guard(policy, n * reps, big)
    batch = arbitrate(big, n * reps, policy, as_json=True)
    small = arbitrate(cols, n, policy, as_json=True)
    for key, column in small.items():
        assert batch[key].tolist() == column.tolist() * reps, key
