"""Arbitration's small-batch path (set look-ups, #18) against its vectorised path and against the
action-by-action arbitration it replaced, on hand-built rows with missing values and unknown classes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import training.policy as P
from training.policy import Policy, arbitrate, customer_inputs, default_policy


def _policy() -> Policy:
    """The shipped policy plus two actions whose rules use `any_of` and a min/max range."""
    raw = default_policy().model_dump()
    raw["actions"] += [
        {
            "name": "occupation_offer",
            "classes": ["mass", "affluent"],
            "stages": ["family_growth", "retirement"],
            "channel": raw["actions"][0]["channel"],
            "lever": raw["actions"][0]["lever"],
            "propensity": "upgrade",
            "value_fixed": 120.0,
            "value_aum_rate": 0.001,
            "customer_benefit": 0.3,
            "when": [
                {"column": "occupation", "any_of": ["salaried", "retired", "3"]},
                {"column": "age", "min": 30, "max": 70},
            ],
        },
        {
            "name": "region_call",
            "classes": ["hnw", "affluent"],
            "channel": raw["actions"][0]["channel"],
            "lever": raw["actions"][0]["lever"],
            "propensity": "churn",
            "value_aum_rate": 0.002,
            "when": [{"column": "region", "any_of": ["metro"]}, {"column": "payroll_at_bank", "equals": False}],
        },
    ]
    return Policy.model_validate(raw)


def _book() -> dict[str, np.ndarray]:
    """Nine customers: known and unknown classes, missing stage / age / assessment / flags, inf AUM."""
    nan = float("nan")
    obj = lambda *v: np.array(v, dtype=object)
    return {
        "tier": obj("mass", "affluent", "hnw", None, "platinum", "affluent", nan, "mass", "hnw"),
        "stated_risk": obj(
            "balanced", "conservative", nan, "aggressive", "balanced", None, "balanced", "x", "aggressive"
        ),
        "lifecycle_stage": obj(
            "young_professional",
            "family_growth",
            "retirement",
            None,
            "family_growth",
            nan,
            "retirement",
            "family_growth",
            "unknown_stage",
        ),
        "age": obj(25.0, 45.0, 70.0, None, 40.0, nan, 65.0, 31.0, 55.0),
        "occupation": obj("salaried", "retired", None, "salaried", nan, 3, "self_employed", "retired", "salaried"),
        "region": obj("metro", None, "metro", "rural", "metro", "metro", nan, "metro", "rural"),
        "aum": obj(20_000.0, 900_000.0, 3e7, None, 5e5, float("inf"), nan, 1e6, 4e6),
        "aum_change_3m": np.array([0.05, -0.02, -0.9, nan, 0.1, 0.0, 0.3, -0.1, 0.7]),
        "churn_proba": obj(0.05, 0.3, 0.8, None, 0.25, nan, 0.6, 0.1, 1.5),
        "upgrade_proba": np.array([0.02, 0.15, nan, 0.2, 0.5, 0.12, 0.3, 0.11, -1.0]),
        "risk_proba_aggressive": np.array([0.1, 0.9, 0.1, 0.7, nan, 0.2, 0.4, 0.5, 0.95]),
        "hidden_aggressive": obj(False, True, None, False, nan, True, False, False, False),
        "payroll_at_bank": obj(True, False, False, None, False, nan, True, False, False),
        "mortgage_balance": obj(0.0, 1e5, None, 0.0, nan, 0.0, 2.0, 0.0, 0.0),
    }


# -- the arbitration matrices as computed before #18, action by action with np.isin ----------------
def _reference_floats(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _reference_condition(cond, cols, n: int) -> np.ndarray:
    raw = cols.get(cond.column)
    if raw is None:
        return np.zeros(n, dtype=bool)
    ok = np.ones(n, dtype=bool)
    if cond.min is not None or cond.max is not None:
        x = _reference_floats(raw, n)
        with np.errstate(invalid="ignore"):
            if cond.min is not None:
                ok &= x >= cond.min
            if cond.max is not None:
                ok &= x <= cond.max
    if cond.any_of is not None:
        s = P._strings(raw, n)
        ok &= np.isin(s.astype(str), cond.any_of) & (s != None)  # noqa: E711
    if cond.equals is not None:
        ok &= P._bools(raw, n) == cond.equals
    return ok


def _reference_matrices(policy: Policy, cols, n: int, inp):
    props = {"none": np.ones(n)}
    for source, column in P.PROPENSITY_COLUMNS.items():
        values = cols.get(column)
        if values is None and source == "revealed_aggressive":
            values = cols.get(P.HIDDEN_AGGRESSIVE_COLUMN)
        props[source] = np.nan_to_num(_reference_floats(values, n), nan=0.0).clip(0, 1)
    a = len(policy.actions)
    eligible, prop, value = np.zeros((n, a), dtype=bool), np.zeros((n, a)), np.zeros((n, a))
    trend_factor = 1 + policy.trend_weight * inp["trend"]
    for j, act in enumerate(policy.actions):
        m = np.isin(inp["class"].astype(str), act.classes)
        if act.stages is not None:
            m &= np.isin(inp["stage"].astype(str), act.stages)
        for cond in act.when:
            m &= _reference_condition(cond, cols, n)
        eligible[:, j] = m
        prop[:, j] = act.base_rate * props[act.propensity]
        bank = act.value_fixed + act.value_aum_rate * inp["aum"] * trend_factor
        value[:, j] = bank * (1 + policy.customer_weight * act.customer_benefit)
    lever = np.array([policy.levers[act.lever] for act in policy.actions])
    return eligible, prop * value * lever[None, :], prop, value


def _equal(got, want) -> None:
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert np.array_equal(g, w, equal_nan=True)


@pytest.mark.parametrize("columns", ["all", "no_lifecycle", "no_flags"])
def test_small_path_equals_vectorised_path_and_the_previous_code(columns):
    policy, cols = _policy(), _book()
    if columns == "no_lifecycle":
        cols.pop("lifecycle_stage")  # stages come from age (NaN age: no stage)
    if columns == "no_flags":
        for c in ("hidden_aggressive", "payroll_at_bank", "risk_proba_aggressive", "region"):
            cols.pop(c)
    n = len(cols["tier"])
    inp = customer_inputs(cols, n)
    small = P._matrices(policy, cols, n, inp, small=True)
    vectorised = P._matrices(policy, cols, n, inp, small=False)
    _equal(small, vectorised)
    _equal(small, _reference_matrices(policy, cols, n, inp))
    # The hand-built rows do exercise the rules: some customers pass each new action, some do not.
    names = [a.name for a in policy.actions]
    for name in ("occupation_offer", "region_call"):
        column = small[0][:, names.index(name)]
        if columns == "no_flags" and name == "region_call":
            assert not column.any()  # a rule on a missing column is never met
        else:
            assert column.any() and not column.all(), name


@pytest.mark.parametrize("columns", ["all", "no_flags"])
def test_one_customers_values_are_the_batch_rows_bit_for_bit(columns):
    """One customer's priority, propensity and value (Python floats, #18) have the bits of that row of the
    vectorised path and of the previous code: signed zeros, inf / NaN amounts and propensities included."""
    policy, cols = _policy(), _book()
    cols["upgrade_proba"] = np.array([-0.0, 0.15, np.inf, 0.2, 0.5, -np.inf, 0.3, 0.11, -1.0])
    cols["aum_change_3m"] = np.array([-0.0, -0.02, -0.9, np.nan, 0.1, 0.0, 0.3, -0.1, 0.7])
    if columns == "no_flags":
        for c in ("hidden_aggressive", "risk_proba_aggressive"):
            cols.pop(c)
    n = len(cols["tier"])
    inp = customer_inputs(cols, n)
    batch = P._matrices(policy, cols, n, inp, small=False)
    reference = _reference_matrices(policy, cols, n, inp)
    calls = []
    real = P._one_customer_values
    for i in range(n):
        one = {k: v[i : i + 1] for k, v in cols.items()}
        one_inp = customer_inputs(one, 1)
        calls.append(real(policy, P._plan(policy), one, one_inp) is not None)
        got = P._matrices(policy, one, 1, one_inp)
        for g, b, r in zip(got, batch, reference, strict=True):
            assert g.shape == (1, b.shape[1]) and g.dtype == b.dtype
            assert g.tobytes() == b[i : i + 1].tobytes() == r[i : i + 1].tobytes(), i
    assert all(calls)


def test_each_customer_alone_ranks_as_in_a_big_batch():
    """A batch above SMALL_BATCH takes the vectorised path; each customer alone takes the small one."""
    policy, cols = _policy(), _book()
    n = len(cols["tier"])
    reps = P.SMALL_BATCH // n + 2
    big = {k: np.concatenate([v] * reps) for k, v in cols.items()}
    assert reps * n > P.SMALL_BATCH
    batch = arbitrate(big, reps * n, policy)
    for i in range(n):
        alone = arbitrate({k: v[i : i + 1] for k, v in cols.items()}, 1, policy)
        for key, column in alone.items():
            assert column[0] == batch[key][i], (key, i)
            assert column[0] == batch[key][i + n], (key, i)


def test_plan_is_cached_per_policy_and_follows_a_new_policy():
    a, b = _policy(), default_policy()
    assert P._plan(a) is P._plan(a)
    assert P._plan(b) is not P._plan(a)
    assert P._plan(b).level.shape == (len(b.actions),)


@pytest.mark.parametrize("columns", ["all", "no_flags"])
def test_templated_reasons_are_the_per_action_reason_strings(columns):
    """`arbitrate` formats reasons from per-action templates (#18, batches); every action of every
    customer gets exactly `_reason`'s string (missing class / stage / assessment, inf / NaN amounts)."""
    policy, cols = _policy(), _book()
    if columns == "no_flags":
        for c in ("hidden_aggressive", "risk_proba_aggressive"):
            cols.pop(c)  # the aggressive propensity falls back to the flag's column name
    n = len(cols["tier"])
    inp = customer_inputs(cols, n)
    _, _, prop, value = P._matrices(policy, cols, n, inp)
    templates = P._reason_templates(policy, cols)
    for j, act in enumerate(policy.actions):
        for i in range(n):
            want = P._reason(act, i, prop[i, j], value[i, j], policy, cols, inp)
            got = P._reason_from(
                templates[j], act.base_rate, prop[i, j], value[i, j], inp["class"][i], inp["stage"][i],
                inp["stated"][i], inp["aum"][i], inp["trend"][i],
            )  # fmt: skip
            assert got == want, (act.name, i)


def test_cached_templates_follow_the_books_columns():
    """The templates are cached per policy and per "aggressive propensity column present?": a book
    without it, scored after one with it (and back), still names the flag's column in its reasons."""
    policy = _policy()
    for drop in (False, True, False):
        cols = _book()
        if drop:
            cols.pop("risk_proba_aggressive")
        n = len(cols["tier"])
        inp = customer_inputs(cols, n)
        _, _, prop, value = P._matrices(policy, cols, n, inp)
        names = [a.name for a in policy.actions]
        out = arbitrate(cols, n, policy)
        for i in range(n):
            for a in out["actions"][i]:
                if a["action"] == policy.default_action:
                    continue
                j = names.index(a["action"])
                assert a["reason"] == P._reason(policy.actions[j], i, prop[i, j], value[i, j], policy, cols, inp)


@pytest.mark.parametrize("names", ["shipped", "awkward"])
def test_actions_as_json_are_json_dumps_of_the_lists(names):
    """`arbitrate(as_json=True)` writes each row's actions as they are ranked: exactly `json.dumps`
    of the list of dicts (default actions, unknown classes, inf / NaN amounts, quotes and non-ASCII
    in names and reasons), with the same other columns."""
    import json

    policy = _policy()
    if names == "awkward":
        raw = policy.model_dump()
        raw["actions"][-1]["name"] = 'r\u00e9gion "call"\\'
        raw["default_action"] = 'as "usual" \u00e9t\u00e9\\'  # the default row's encoding too
        policy = Policy.model_validate(raw)
    for cols in (_book(), {k: np.concatenate([v] * (P.SMALL_BATCH // 9 + 2)) for k, v in _book().items()}):
        n = len(cols["tier"])
        lists = arbitrate(cols, n, policy)
        strings = arbitrate(cols, n, policy, as_json=True)
        assert strings["actions"].tolist() == [json.dumps(row) for row in lists["actions"]]
        assert any(len(row) > 1 for row in lists["actions"])  # rows with several ranked actions
        assert any(row[0]["action"] == policy.default_action for row in lists["actions"])  # and default rows
        for key in lists:
            if key != "actions":
                assert strings[key].tolist() == lists[key].tolist(), key
