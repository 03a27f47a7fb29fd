"""Customers to advisors and channels under capacity, maximising the policy's expected value.

The problem (`clientlens assign`): every customer takes at most one service option, either an
advisor (whose role the class's service model allows, with the seniority it requires, e.g. a
private banker with 5+ years for high net worth) or a channel-only service (e.g. digital). An
option realises a share of the customer's expected action value (`service_models.<class>.realisation`,
plus `same_region_bonus` when advisor and customer share a region). Limits: clients per advisor
(`max_clients`, at most the role's cap), contact slots per channel per week (a served customer
uses `contacts_per_week` slots of the option's channel), and a class with `min_coverage` gets
its qualified advisors first (every HNW customer who fits goes to a senior private banker).

Advisors that are interchangeable for the objective (same role, same classes they qualify for,
same region) form a pool; the value of a customer depends only on the pool, so the pooled
problem has the same optimum as the per-advisor one, and each pool's customers are then dealt
to its advisors up to their capacity. The pooled problem is a linear program (HiGHS through
`scipy.optimize.linprog`): its optimum is the bound. A basic optimal solution has at most as
many fractional customers as there are coupling rows (pools + channels + coverage), a few
dozen, so rounding (the fractional customers re-placed greedily into what is left) loses
almost nothing; the gap to the bound is reported.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InputError
from core.tasks import ACTIONS_COLUMN, SERVICE_CLASS_COLUMN, TIER_CLASSES
from training.policy import Policy, expected_value

logger = logging.getLogger(__name__)

ADVISOR_COLUMNS = ("advisor_id", "role", "seniority_years", "max_clients")
EXPECTED_VALUE_COLUMN = "expected_value"


@dataclass(frozen=True)
class Option:
    """One service option: an advisor pool (`role` set) or a channel-only service."""

    name: str  # the role, or the channel for a channel-only option
    channel: str
    capacity: float  # clients (inf for a channel-only option)
    region: str | None = None
    advisor_ids: tuple[Any, ...] = ()
    advisor_capacity: tuple[int, ...] = ()

    @property
    def is_advisor(self) -> bool:
        return bool(self.advisor_ids)


@dataclass
class Problem:
    """The pooled assignment problem: one variable per (customer, option) the customer may take."""

    options: list[Option]
    cust: np.ndarray  # customer index per variable
    opt: np.ndarray  # option index per variable
    value: np.ndarray  # expected value realised per variable
    slots: np.ndarray  # channel slots used per variable (contacts per week)
    channels: list[str]  # channels with a weekly limit
    channel_slots: np.ndarray
    var_channel: np.ndarray  # index into `channels` per variable, -1 = unlimited
    coverage: list[tuple[np.ndarray, float, str]]  # (variables, minimum count, what) per covered class
    n: int


# -- validation ---------------------------------------------------------------------------------
def check_advisors(advisors: pd.DataFrame, policy: Policy, what: str = "--advisors") -> pd.DataFrame:
    """The advisors table, validated against the policy (`InputError` naming the column and row)."""
    missing = [c for c in ADVISOR_COLUMNS if c not in advisors.columns]
    if missing:
        raise InputError(
            f"{what}: missing column(s) {missing}; expected {', '.join(ADVISOR_COLUMNS)} (+ optional region)"
        )
    if advisors.empty:
        raise InputError(f"{what}: no advisors")
    frame = advisors.reset_index(drop=True)
    if frame["advisor_id"].isna().any() or frame["advisor_id"].duplicated().any():
        dup = frame.loc[frame["advisor_id"].duplicated(), "advisor_id"].head(3).tolist()
        raise InputError(f"{what}: column advisor_id must be unique and present (duplicates: {dup})")
    bad_role = ~frame["role"].isin(list(policy.roles))
    if bad_role.any():
        i = int(np.flatnonzero(bad_role)[0])
        raise InputError(
            f"{what}: column role, row {i}: {frame['role'][i]!r} is not a policy role ({', '.join(policy.roles)})"
        )
    for col in ("seniority_years", "max_clients"):
        vals = pd.to_numeric(frame[col], errors="coerce")
        bad = vals.isna() | (vals < 0) | ((vals <= 0) if col == "max_clients" else False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{what}: column {col}, row {i}: {frame[col][i]!r} is not a number >= 0"
                + (" (> 0)" if col == "max_clients" else "")
            )
        frame[col] = vals
    if (frame["max_clients"] % 1 != 0).any():
        i = int(np.flatnonzero(frame["max_clients"] % 1 != 0)[0])
        raise InputError(f"{what}: column max_clients, row {i}: {frame['max_clients'][i]} is not a whole number")
    cap = frame["role"].map({r: v.max_clients for r, v in policy.roles.items()})
    over = frame["max_clients"] > cap
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise InputError(
            f"{what}: column max_clients, row {i} (advisor {frame['advisor_id'][i]}): {int(frame['max_clients'][i])} "
            f"> {int(cap[i])}, the most a {frame['role'][i]} may hold (policy roles.{frame['role'][i]}.max_clients)"
        )
    return frame


def book_inputs(scores: pd.DataFrame, what: str = "--scores") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(class, expected value, region or None) per customer of a scored book."""
    cls_col = SERVICE_CLASS_COLUMN if SERVICE_CLASS_COLUMN in scores.columns else "tier"
    if cls_col not in scores.columns:
        raise InputError(f"{what}: no {SERVICE_CLASS_COLUMN} (or tier) column; score the book with `clientlens score`")
    classes = scores[cls_col].astype(object).to_numpy()
    bad = ~np.isin(classes.astype(str), TIER_CLASSES)
    if bad.any():
        raise InputError(
            f"{what}: column {cls_col}, row {int(np.flatnonzero(bad)[0])}: {classes[bad][0]!r} is not one of {TIER_CLASSES}"
        )
    if EXPECTED_VALUE_COLUMN in scores.columns:
        ev = pd.to_numeric(scores[EXPECTED_VALUE_COLUMN], errors="coerce").fillna(0).to_numpy(np.float64)
    elif ACTIONS_COLUMN in scores.columns:
        ev = expected_value(scores[ACTIONS_COLUMN].tolist())
    else:
        raise InputError(
            f"{what}: no {ACTIONS_COLUMN} (or {EXPECTED_VALUE_COLUMN}) column; score the book with `clientlens score`"
        )
    region = scores["region"].astype(object).to_numpy() if "region" in scores.columns else None
    return classes, np.clip(ev, 0, None), region


# -- the problem --------------------------------------------------------------------------------
def _pools(advisors: pd.DataFrame, policy: Policy) -> list[tuple[Option, frozenset[str]]]:
    """Advisor pools: same role, same set of classes they qualify for, same region."""
    qualifies = {
        cls: (
            advisors["role"].isin(sm.advisor_roles) & (advisors["seniority_years"] >= sm.min_seniority_years)
        ).to_numpy()
        for cls, sm in policy.service_models.items()
    }
    keys = [
        (
            advisors["role"][i],
            frozenset(c for c in qualifies if qualifies[c][i]),
            advisors["region"][i] if "region" in advisors else None,
        )
        for i in range(len(advisors))
    ]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    pools = []
    for (role, classes, region), rows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if not classes:
            continue
        caps = tuple(int(advisors["max_clients"][i]) for i in rows)
        pools.append(
            (
                Option(
                    role,
                    policy.roles[role].channel,
                    float(sum(caps)),
                    region,
                    tuple(advisors["advisor_id"][i] for i in rows),
                    caps,
                ),
                classes,
            )
        )
    return pools


def build_problem(
    classes: np.ndarray,
    ev: np.ndarray,
    region: np.ndarray | None,
    advisors: pd.DataFrame,
    policy: Policy,
    what: str = "--advisors",
) -> Problem:
    n = len(classes)
    pools = _pools(advisors, policy)
    options: list[Option] = [p for p, _ in pools]
    channel_options = {ch: len(options) + k for k, ch in enumerate(policy.channels)}
    options += [Option(ch, ch, math.inf) for ch in policy.channels]
    limited = [ch for ch, c in policy.channels.items() if c.weekly_slots is not None]
    ch_index = {ch: k for k, ch in enumerate(limited)}
    cust, opt, value, slots = [], [], [], []
    coverage = []
    offset = 0
    for cls, sm in policy.service_models.items():
        members = np.flatnonzero(classes == cls)
        if not len(members):
            continue
        advisor_vars = []
        qualified_cap = 0.0
        for j, (pool, qualified) in enumerate(pools):
            if cls not in qualified or pool.name not in sm.realisation:
                continue
            share = np.full(len(members), sm.realisation[pool.name])
            if region is not None and pool.region is not None:
                share = share * np.where(region[members] == pool.region, 1 + policy.same_region_bonus, 1.0)
            advisor_vars.append(np.arange(offset, offset + len(members)))
            offset += len(members)
            cust.append(members)
            opt.append(np.full(len(members), j))
            value.append(ev[members] * share)
            slots.append(np.full(len(members), sm.contacts_per_week))
            qualified_cap += pool.capacity
        for ch, ch_share in sm.realisation.items():
            if ch in policy.channels:
                offset += len(members)
                cust.append(members)
                opt.append(np.full(len(members), channel_options[ch]))
                value.append(ev[members] * ch_share)
                slots.append(np.full(len(members), sm.contacts_per_week))
        if sm.min_coverage > 0:
            needed = math.ceil(sm.min_coverage * len(members))
            if qualified_cap < needed:
                roles = "/".join(sm.advisor_roles) or "(no role)"
                raise InputError(
                    f"{what}: cannot serve the book: {roles} advisors with seniority_years >= {sm.min_seniority_years:g} "
                    f"hold {qualified_cap:,.0f} clients (sum of max_clients) but {len(members):,} {cls} customers need "
                    f"at least {needed:,} (policy service_models.{cls}.min_coverage {sm.min_coverage:g}); add qualified advisors"
                )
            if advisor_vars:
                room = [qualified_cap, len(members)]
                for ch in {pools[j][0].channel for j, (_, q) in enumerate(pools) if cls in q}:
                    if ch in ch_index and sm.contacts_per_week > 0:
                        slots_ch = policy.channels[ch].weekly_slots
                        assert slots_ch is not None  # ch_index holds only channels with weekly_slots
                        room.append(slots_ch / sm.contacts_per_week)
                coverage.append(
                    (np.concatenate(advisor_vars), float(math.floor(min(room))), f"{cls} on qualified advisors")
                )
    cust_a = np.concatenate(cust) if cust else np.zeros(0, np.int64)
    opt_a = np.concatenate(opt) if opt else np.zeros(0, np.int64)
    var_channel = np.array([ch_index.get(options[o].channel, -1) for o in range(len(options))], dtype=np.int64)[opt_a]
    return Problem(
        options=options,
        cust=cust_a,
        opt=opt_a,
        value=np.concatenate(value) if value else np.zeros(0),
        slots=np.concatenate(slots) if slots else np.zeros(0),
        channels=limited,
        channel_slots=np.array([policy.channels[ch].weekly_slots for ch in limited], dtype=np.float64),
        var_channel=var_channel,
        coverage=coverage,
        n=n,
    )


# -- solving ------------------------------------------------------------------------------------
@dataclass
class Solution:
    chosen: np.ndarray  # variable index per customer, -1 = not served
    bound: float  # an upper bound on the LP relaxation's optimum (hence on any assignment)
    lp_value: float  # the bucketed LP's optimum
    buckets: int
    lp_variables: int


def _buckets(p: Problem, group: np.ndarray, ev: np.ndarray, resolution: float) -> np.ndarray:
    """Bucket id per customer: same group (class, region) and expected value within a factor
    `1 + resolution` (log bins), so a bucket's customers are interchangeable up to that factor."""
    logv = np.log(np.maximum(ev, 1e-9))
    bins = np.floor(logv / np.log1p(resolution)).astype(np.int64)
    bins[ev <= 0] = np.iinfo(np.int64).min  # zero-value customers: one bucket per group
    _, bucket = np.unique(np.stack([group, bins], axis=1), axis=0, return_inverse=True)
    return bucket.ravel()


def _coupling(
    p: Problem, opt: np.ndarray, slots: np.ndarray, var_channel: np.ndarray, coverage: list[np.ndarray], m: int
):
    """Coupling rows (pools, channel slots, coverage) as (sparse A, b) for variables described by the arrays."""
    from scipy.sparse import csr_matrix, vstack

    rows, rhs = [], []
    pool_idx = [j for j, o in enumerate(p.options) if math.isfinite(o.capacity)]
    remap = np.full(len(p.options), -1)
    remap[pool_idx] = np.arange(len(pool_idx))
    sel = remap[opt] >= 0
    rows.append(csr_matrix((np.ones(sel.sum()), (remap[opt][sel], np.flatnonzero(sel))), shape=(len(pool_idx), m)))
    rhs.append(np.array([p.options[j].capacity for j in pool_idx], dtype=np.float64))
    sel = var_channel >= 0
    rows.append(csr_matrix((slots[sel], (var_channel[sel], np.flatnonzero(sel))), shape=(len(p.channels), m)))
    rhs.append(p.channel_slots)
    for (_, minimum, _), variables in zip(p.coverage, coverage, strict=True):  # sum x >= min <=> -sum x <= -min
        rows.append(
            csr_matrix((-np.ones(len(variables)), (np.zeros(len(variables), np.int64), variables)), shape=(1, m))
        )
        rhs.append(np.array([-minimum]))
    return vstack(rows, format="csr"), np.concatenate(rhs)


def lagrangian_bound(p: Problem, duals: np.ndarray) -> float:
    """Upper bound on the per-customer LP at coupling duals `duals` >= 0 (weak duality): each
    customer takes their best reduced value (or nothing), plus the duals times the right-hand sides."""
    A, b = _coupling(p, p.opt, p.slots, p.var_channel, [c[0] for c in p.coverage], len(p.value))
    reduced = p.value - A.T @ duals
    best = np.zeros(p.n)
    np.maximum.at(best, p.cust, reduced)
    return float(best.sum() + duals @ b)


def solve(
    p: Problem, group: np.ndarray, ev: np.ndarray, *, resolution: float = 0.01, time_limit: float = 50.0
) -> Solution:
    """The capacity LP on buckets of interchangeable customers (HiGHS), rounded to whole customers.

    Within a bucket every customer uses the same resources per option and their values differ by
    at most `resolution`; the LP decides how many of each bucket take each option, and the
    bucket's customers are then dealt highest value first to the best-realising options (which
    realises at least the LP's mean-value estimate). The bound is exact, not bucketed: the
    Lagrangian of the per-customer LP at the bucketed LP's duals, an upper bound on the LP
    relaxation (and so on the best possible assignment).
    """
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    bucket = _buckets(p, group, ev, resolution)
    nb = int(bucket.max()) + 1 if p.n else 0
    key = bucket[p.cust].astype(np.int64) * len(p.options) + p.opt
    keys, agg, counts = np.unique(key, return_inverse=True, return_counts=True)
    agg = agg.ravel()
    m = len(keys)
    value = np.bincount(agg, weights=p.value, minlength=m) / counts  # mean value per (bucket, option)
    rep = np.zeros(m, dtype=np.int64)
    rep[agg] = np.arange(len(agg))  # a representative per-customer variable
    b_of, opt = keys // len(p.options), p.opt[rep]
    size = np.bincount(bucket, minlength=nb).astype(np.float64)
    cover = [np.unique(agg[c[0]]) for c in p.coverage]
    A_c, b_c = _coupling(p, opt, p.slots[rep], p.var_channel[rep], cover, m)
    A = vstack([csr_matrix((np.ones(m), (b_of, np.arange(m))), shape=(nb, m)), A_c], format="csr")
    res = linprog(
        -value, A_ub=A, b_ub=np.concatenate([size, b_c]), bounds=(0, None), method="highs",
        options={"time_limit": time_limit, "presolve": True},
    )  # fmt: skip
    if res.status != 0 or res.x is None:
        raise InputError(
            f"assign: the capacity problem has no solution ({res.message}); check the advisors and channel slots"
        )
    duals = np.maximum(-np.asarray(res.ineqlin.marginals)[nb:], 0.0)
    chosen = _deal_buckets(p, bucket, b_of, opt, np.floor(res.x + 1e-6).astype(np.int64), ev)
    _place_rest(p, chosen)
    return Solution(chosen, lagrangian_bound(p, duals), -float(res.fun), nb, m)


def _deal_buckets(
    p: Problem, bucket: np.ndarray, b_of: np.ndarray, opt: np.ndarray, count: np.ndarray, ev: np.ndarray
) -> np.ndarray:
    """Whole customers from the bucket counts: each bucket's customers, highest value first, take
    its options best-realising first (by the option's value for the bucket's top customer)."""
    chosen = np.full(p.n, -1, dtype=np.int64)
    var_of = {(int(c), int(o)): v for v, (c, o) in enumerate(zip(p.cust, p.opt, strict=True))}
    members_sorted = np.lexsort((-ev, bucket))
    starts = np.searchsorted(bucket[members_sorted], np.arange(int(bucket.max()) + 2 if p.n else 1))
    use = np.flatnonzero(count > 0)
    by_bucket: dict[int, list[int]] = {}
    for agg in use:
        by_bucket.setdefault(int(b_of[agg]), []).append(int(agg))
    for b, aggs in by_bucket.items():
        members = members_sorted[starts[b] : starts[b + 1]]
        top = int(members[0])
        aggs.sort(key=lambda a: -p.value[var_of[(top, int(opt[a]))]])
        k = 0
        for a in aggs:
            for i in members[k : k + int(count[a])]:
                chosen[i] = var_of[(int(i), int(opt[a]))]
            k += int(count[a])
    return chosen


def _place_rest(p: Problem, chosen: np.ndarray) -> None:
    """Fill what capacity the rounding left with the customers not yet served (best value first)."""
    taken = chosen >= 0
    cap_left, slots_left = _capacities(p)
    np.subtract.at(cap_left, p.opt[chosen[taken]], 1)
    wc = p.var_channel[chosen[taken]]
    np.subtract.at(slots_left, wc[wc >= 0], p.slots[chosen[taken]][wc >= 0])
    rest = np.flatnonzero(~taken[p.cust])
    _place(p, rest[np.argsort(-p.value[rest], kind="stable")], chosen, cap_left, slots_left, taken)


def _place(
    p: Problem, order: np.ndarray, chosen: np.ndarray, cap_left: np.ndarray, slots_left: np.ndarray, taken: np.ndarray
) -> None:
    """Greedy placement of variables in `order` into what is left (in place)."""
    cust, opt, ch, sl = p.cust, p.opt, p.var_channel, p.slots
    for v in order:
        i = cust[v]
        if taken[i]:
            continue
        o = opt[v]
        if cap_left[o] < 1:
            continue
        c = ch[v]
        if c >= 0 and slots_left[c] < sl[v] - 1e-9:
            continue
        taken[i] = True
        chosen[i] = v
        cap_left[o] -= 1
        if c >= 0:
            slots_left[c] -= sl[v]


def _capacities(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    return np.array([o.capacity for o in p.options], dtype=np.float64), p.channel_slots.copy()


def greedy(p: Problem) -> np.ndarray:
    """The baseline: every (customer, option) pair by value, best first, taken while it fits
    (coverage first, as the solver must, so both honour the same rules)."""
    chosen = np.full(p.n, -1, dtype=np.int64)
    taken = np.zeros(p.n, dtype=bool)
    cap_left, slots_left = _capacities(p)
    for variables, _, _ in p.coverage:
        _place(p, variables[np.argsort(-p.value[variables], kind="stable")], chosen, cap_left, slots_left, taken)
    _place(p, np.argsort(-p.value, kind="stable"), chosen, cap_left, slots_left, taken)
    return chosen


def objective(p: Problem, chosen: np.ndarray) -> float:
    return float(p.value[chosen[chosen >= 0]].sum())


def group_of(classes: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """Customers with the same options and the same realisation: same class and region."""
    key = (
        classes.astype(str)
        if region is None
        else np.char.add(np.char.add(classes.astype(str), "|"), region.astype(str))
    )
    return np.unique(key, return_inverse=True)[1].ravel()


# -- the whole job -------------------------------------------------------------------------------
def _deal(p: Problem, chosen: np.ndarray) -> np.ndarray:
    """Advisor id per customer: each pool's customers (highest value first) dealt to its advisors up to capacity."""
    advisor = np.full(p.n, None, dtype=object)
    opt_of = np.where(chosen >= 0, p.opt[np.maximum(chosen, 0)], -1)
    val_of = np.where(chosen >= 0, p.value[np.maximum(chosen, 0)], 0.0)
    for j, o in enumerate(p.options):
        if not o.is_advisor:
            continue
        members = np.flatnonzero(opt_of == j)
        members = members[np.argsort(-val_of[members], kind="stable")]
        ids = np.repeat(np.array(o.advisor_ids, dtype=object), o.advisor_capacity)
        if len(members) > len(ids):  # cannot happen: the pool capacity is a constraint
            raise AssertionError(f"pool {o.name}/{o.region} over capacity: {len(members)} > {len(ids)}")
        advisor[members] = ids[: len(members)]
    return advisor


def assign(
    scores: pd.DataFrame,
    advisors: pd.DataFrame,
    policy: Policy,
    *,
    resolution: float = 0.01,
    time_limit: float = 50.0,
    with_greedy: bool = False,
    names: tuple[str, str] = ("--scores", "--advisors"),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Assign the scored book; returns (one row per customer, the summary). `names` label the
    two inputs in error messages (the CLI passes the option and the file)."""
    t0 = time.perf_counter()
    advisors = check_advisors(advisors, policy, names[1])
    classes, ev, region = book_inputs(scores, names[0])
    p = build_problem(classes, ev, region, advisors, policy, names[1])
    t_build = time.perf_counter() - t0
    sol = solve(p, group_of(classes, region), ev, resolution=resolution, time_limit=time_limit)
    t_lp = time.perf_counter() - t0 - t_build
    chosen, bound = sol.chosen, sol.bound
    value = objective(p, chosen)
    seconds = time.perf_counter() - t0
    out, summary = report(p, chosen, classes, scores, policy)
    summary.update(
        {
            "customers": p.n,
            "advisors": len(advisors),
            "pools": sum(o.is_advisor for o in p.options),
            "variables": len(p.value),
            "objective": round(value, 2),
            "lp_bound": round(bound, 2),
            "bucketed_lp_value": round(sol.lp_value, 2),
            "lp_buckets": sol.buckets,
            "lp_variables": sol.lp_variables,
            "gap": (bound - value) / bound if bound > 0 else 0.0,
            "seconds": {"build": round(t_build, 2), "lp": round(t_lp, 2), "total": round(seconds, 2)},
        }
    )
    if with_greedy:
        g = objective(p, greedy(p))
        summary["greedy_objective"] = round(g, 2)
        summary["value_ratio_vs_greedy"] = value / g if g > 0 else None
    return out, summary


def report(
    p: Problem, chosen: np.ndarray, classes: np.ndarray, scores: pd.DataFrame, policy: Policy
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-customer rows and the summary: who went where, what did not fit and what it cost."""
    has = chosen >= 0
    v = np.maximum(chosen, 0)
    option = np.where(has, np.array([o.name for o in p.options], dtype=object)[p.opt[v]], None)
    channel = np.where(has, np.array([o.channel for o in p.options], dtype=object)[p.opt[v]], None)
    realised = np.where(has, p.value[v], 0.0)
    best = np.zeros(p.n)
    np.maximum.at(best, p.cust, p.value)
    advisor = _deal(p, chosen)
    ids = scores["customer_id"].to_numpy() if "customer_id" in scores.columns else np.arange(p.n)
    out = pd.DataFrame(
        {
            "customer_id": ids,
            SERVICE_CLASS_COLUMN: classes,
            "service_option": option,
            "advisor_id": advisor,
            "channel": channel,
            "expected_value": realised,
            "best_value": best,
            "lost_value": best - realised,
        }
    )
    by_class: dict[str, Any] = {}
    for cls in TIER_CLASSES:
        m = classes == cls
        if not m.any():
            continue
        sm = policy.service_models[cls]
        on_advisor = m & pd.notna(advisor)
        by_class[cls] = {
            "customers": int(m.sum()),
            "options": pd.Series(option[m]).fillna("unserved").value_counts().to_dict(),
            "on_qualified_advisor": int(on_advisor.sum()),
            "not_fitted": int((m & ~has).sum()),
            "below_best_option": int((m & has & (best - realised > 1e-9)).sum()),
            "lost_value": round(float((best - realised)[m].sum()), 2),
            "min_seniority_years": sm.min_seniority_years,
        }
    load: dict[Any, int] = pd.Series(advisor[pd.notna(advisor)]).value_counts().to_dict()
    caps = {a: c for o in p.options for a, c in zip(o.advisor_ids, o.advisor_capacity, strict=True)}
    over = {a: n for a, n in load.items() if n > caps[a]}
    slots_used = {}
    for k, ch in enumerate(p.channels):
        sel = has & (p.var_channel[v] == k)
        slots_used[ch] = {"used": round(float(p.slots[v][sel].sum()), 1), "limit": float(p.channel_slots[k])}
    summary = {
        "by_class": by_class,
        "channel_slots": slots_used,
        "advisors_used": len(load),
        "advisors_over_capacity": len(over),
        "lost_value": round(float((best - realised).sum()), 2),
    }
    return out, summary
