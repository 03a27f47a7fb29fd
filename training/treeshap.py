"""Exact TreeSHAP of a LightGBM booster summed by feature group, from per-leaf tables (issue #18).

LightGBM's `pred_contrib` walks every tree per row; the churn drivers only need each row's TreeSHAP
contributions summed by family. Path-dependent TreeSHAP splits a tree's output leaf by leaf: leaf l
(value V; unique split features k = 1..d on its path, z_k = 1 if the row takes the path's side at every
split on k, r_k = the product of those splits' training-count fractions) is the product game
v(S) = V prod_{k in S} z_k prod_{k not in S} r_k, whose Shapley values are
phi_k = V (z_k - r_k) integral_0^1 prod_{j != k} (r_j + t (z_j - r_j)) dt (the multilinear extension;
exact by Gauss-Legendre with d // 2 + 1 nodes, the integrand has degree d - 1). A repeated feature is one
player whose fractions multiply, as in LightGBM's unwinding. A leaf's contribution depends on the row only
through its pattern z in {0, 1}^d, so each leaf's group sums are tabled once per pattern (the idea of
Fast TreeSHAP v2, Yang 2021, storing group sums instead of per-feature values); a row then costs one
comparison per split node, one sparse product to every leaf's pattern (`FamilyTreeShap.patterns`) and one
gather per (leaf, group on its path). Leaves deeper than the table budget are evaluated per row
by the same formula. Only leaves with a feature in some group are visited: a group left out (-1) gets
nothing, so the other groups' sums are unchanged (Shapley values are per feature).

Exactness: tested against `pred_contrib` (tests/training/test_treeshap.py: numeric, categorical and
missing values, repeated features, a prior); at run time `FamilyTreeShap.agrees` checks every row's own
path against LightGBM's `pred_leaf`, so a split decided differently from LightGBM cannot pass unnoticed.
"""

from __future__ import annotations

import functools
import logging
import weakref
from typing import Any

import numpy as np
from scipy import sparse

from training.model import group_columns

log = logging.getLogger(__name__)

TABLE_BUDGET = 4_000_000  # table entries (float64) per booster and grouping: 32 MB
MAX_TABLE_DEPTH = 16  # unique features on a leaf's path that may be tabled (within the budget); deeper: per row
# Building a grouping's tables costs what `pred_contrib` costs for several hundred rows (0.2-1.5 s on a quiet
# machine): fewer rows on a booster whose tables are not built yet (training's driver accuracy, the demo's
# batch scoring) go to `pred_contrib`; serving builds the tables at model load (`segments.prepare_drivers`).
TABLE_MIN_ROWS = 1000
CHUNK = 64  # rows per block: keeps the (leaf, feature) x rows intermediates in cache
_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float), for missing_type Zero
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


class FamilyTreeShap:
    """TreeSHAP summed by feature group for a LightGBM booster with one score per row (binary, regression)."""

    def __init__(self, booster: Any):
        feature: list[int] = []
        threshold: list[float] = []
        default_left: list[bool] = []
        missing: list[int] = []
        categories: dict[int, list[int]] = {}
        entries: list[tuple[int, int, bool, int]] = []  # (leaf, split node, leaf on its left side, feature bit)
        values: list[float] = []
        self.ratios: list[list[float]] = []  # per leaf: r_k of its k-th unique path feature
        self.features: list[list[int]] = []  # per leaf: its unique path features, in path order
        leaf_global: list[int] = []  # tree offset + leaf_index, as `pred_leaf` numbers them
        self.tree_offsets: list[int] = []
        offset = 0
        for tree in booster.dump_model()["tree_info"]:
            self.tree_offsets.append(offset)
            root = tree["tree_structure"]
            offset += int(tree.get("num_leaves", 1))
            if "split_feature" not in root:  # a single leaf: no contributions
                continue
            stack: list[tuple[dict[str, Any], list[tuple[int, bool, int, float]]]] = [(root, [])]
            while stack:
                node, path = stack.pop()
                if "split_feature" not in node:
                    values.append(float(node["leaf_value"]))
                    self._add_leaf(path, entries)
                    leaf_global.append(self.tree_offsets[-1] + int(node["leaf_index"]))
                    continue
                n = len(feature)
                feature.append(int(node["split_feature"]))
                default_left.append(bool(node.get("default_left", False)))
                missing.append(_MISSING[str(node.get("missing_type", "None"))])
                if node.get("decision_type", "<=") == "==":
                    categories[n] = [int(c) for c in str(node["threshold"]).split("||")]
                    threshold.append(0.0)
                else:
                    threshold.append(float(node["threshold"]))
                count = float(node["internal_count"])
                for side, left in (("left_child", True), ("right_child", False)):
                    child = node[side]
                    c = float(child["internal_count"] if "split_feature" in child else child["leaf_count"])
                    stack.append((child, [*path, (n, left, feature[n], c / count)]))
        self.n_leaves_total = offset
        self.node_feature = np.asarray(feature, dtype=np.int64)
        self.node_threshold = np.asarray(threshold)
        self.node_default_left = np.asarray(default_left, dtype=bool)
        self.node_missing = np.asarray(missing, dtype=np.int64)
        self.cat_nodes = np.asarray(sorted(categories), dtype=np.int64)
        width = max([max(c) for c in categories.values()] + [0]) + 2
        self.cat_left = np.zeros((len(categories), width), dtype=bool)  # last column: unseen code, goes right
        for row, n in enumerate(self.cat_nodes):
            self.cat_left[row, categories[int(n)]] = True
        self.num_nodes = np.setdiff1d(np.arange(len(feature)), self.cat_nodes)
        e = np.asarray(entries, dtype=np.int64).reshape(-1, 4)  # in leaf order, each leaf's path in order
        self.entry_leaf, self.entry_node, self.entry_left, self.entry_bit = e[:, 0], e[:, 1], e[:, 2] == 1, e[:, 3]
        self.leaf_value = np.asarray(values)
        self.leaf_depth = np.asarray([len(f) for f in self.features], dtype=np.int64)
        self.leaf_nodes = np.bincount(self.entry_leaf, minlength=len(self.leaf_value))
        self.leaf_start = np.concatenate([[0], np.cumsum(self.leaf_nodes)[:-1]]).astype(np.int64)
        self.internal_of = np.full(offset, -1, dtype=np.int64)  # pred_leaf's global index -> our leaf
        self.internal_of[np.asarray(leaf_global, dtype=np.int64)] = np.arange(len(leaf_global))
        self.split_trees = np.asarray(
            [t for t in range(len(self.tree_offsets)) if self.internal_of[self.tree_offsets[t]] >= 0], dtype=np.int64
        )
        # Patterns are bit sets in an int64 (and exact sums in a float64): paths of up to 52 unique features.
        self.supported = int(self.leaf_depth.max(initial=0)) <= 52
        self._reads(int(booster.num_feature()))
        self._pattern_matrices()
        self._tables: dict[tuple[int, bytes], _GroupTable] = {}

    def _reads(self, n_features: int) -> None:
        """What `sides` compares at each numeric node: its feature with NaN and the zero band already sent the
        node's default way (missing None: NaN as 0; NaN: NaN to its side; Zero: NaN and |x| <= kZeroThreshold to
        its side), so a block of rows is one gather and one comparison for every numeric node."""
        missing, left = self.node_missing, self.node_default_left
        variant = np.where(missing == 0, 0, np.where(missing == 2, np.where(left, 1, 2), np.where(left, 3, 4)))
        self.n_features = n_features
        self.node_read = variant * n_features + self.node_feature
        self.node_read[self.cat_nodes] = 0  # overwritten by the categorical decision

    def _pattern_matrices(self) -> None:
        """Sparse maps from the split sides (`sides`: nodes, rows, and a last row of ones for the constants) to
        every leaf's pattern z = sum_k 2^k [the row takes the path's side at every split on feature k]. A feature
        split once on the path is linear in the side (2^k left, or 2^k - 2^k left); one split more than once
        counts its mismatches first (small integers): each of its splits must agree. Every sum is of distinct
        powers of two (or of small integers), exact in float32 up to 2^24 (paths of up to 24 unique features),
        else in float64 (up to 2^53, `supported`)."""
        n_leaves, ones = len(self.leaf_value), len(self.node_feature)  # `ones`: the row of ones in `sides`
        dtype = np.float32 if int(self.leaf_depth.max(initial=0)) <= 24 else np.float64
        key = self.entry_leaf * 64 + self.entry_bit
        _, pair, count = np.unique(key, return_inverse=True, return_counts=True)
        once = count[pair] == 1
        leaf, node, wants_left = self.entry_leaf[once], self.entry_node[once], self.entry_left[once]
        weight = np.ldexp(1.0, self.entry_bit[once])
        constant = np.bincount(leaf, weights=np.where(wants_left, 0.0, weight), minlength=n_leaves)
        self.pattern_once = _sparse(
            [np.where(wants_left, weight, -weight), constant],
            [leaf, np.arange(n_leaves)],
            [node, np.full(n_leaves, ones)],
            (n_leaves, ones + 1),
            dtype,
        )
        pair_id, pair = np.unique(key[~once], return_inverse=True)
        wants_left = self.entry_left[~once]
        self.repeat_mismatch = _sparse(
            [np.where(wants_left, -1.0, 1.0), np.bincount(pair, weights=wants_left, minlength=len(pair_id))],
            [pair, np.arange(len(pair_id))],
            [self.entry_node[~once], np.full(len(pair_id), ones)],
            (len(pair_id), ones + 1),
            np.float32,
        )
        self.repeat_bits = _sparse(
            [np.ldexp(1.0, pair_id % 64)], [pair_id // 64], [np.arange(len(pair_id))], (n_leaves, len(pair_id)), dtype
        )
        self.leaf_full = np.left_shift(1, self.leaf_depth) - 1  # the pattern of the leaf the row reaches

    def _add_leaf(self, path: list[tuple[int, bool, int, float]], entries: list) -> None:
        leaf = len(self.ratios)
        bit_of: dict[int, int] = {}
        ratios: list[float] = []
        for n, left, feature, ratio in path:
            if feature not in bit_of:  # a feature split again on the path is one player: fractions multiply
                bit_of[feature] = len(ratios)
                ratios.append(1.0)
            ratios[bit_of[feature]] *= ratio
            entries.append((leaf, n, left, bit_of[feature]))
        self.ratios.append(ratios)
        self.features.append(list(bit_of))

    def sides(self, X: np.ndarray) -> np.ndarray:
        """(split nodes + 1, rows) float32: 1 where the row goes left (LightGBM's Numerical/CategoricalDecision);
        the last row is ones (the constants of `patterns`)."""
        if X.shape[1] != self.n_features:  # `_reads` indexes the variants by the booster's feature count
            raise ValueError(f"expected {self.n_features} feature columns, got {X.shape[1]}")
        XT = np.ascontiguousarray(X.T, dtype=np.float64)
        left = np.empty((len(self.node_feature) + 1, len(X)), dtype=np.float32)
        left[-1] = 1.0
        nan = np.isnan(XT)
        zero = np.where(nan, 0.0, XT)  # NaN counts as zero unless NaN is the missing value
        band = np.abs(zero) <= _ZERO
        # `_reads`' five variants of every feature; the default side is a value that every threshold sends
        # there: -inf goes left, NaN right.
        reads = np.concatenate(
            [zero, np.where(nan, -np.inf, XT), XT, np.where(band, -np.inf, zero), np.where(band, np.nan, zero)]
        )
        with np.errstate(invalid="ignore"):
            np.less_equal(reads[self.node_read], self.node_threshold[:, None], out=left[:-1], casting="unsafe")
        if len(self.cat_nodes):
            c = XT[self.node_feature[self.cat_nodes]]
            width = self.cat_left.shape[1]
            with np.errstate(invalid="ignore"):  # NaN, a negative int (static_cast<int>) or an unseen code: right
                known = ~np.isnan(c) & (np.trunc(c) >= 0) & (c < width - 1)
            code = np.where(known, np.trunc(np.where(known, c, 0.0)), width - 1).astype(np.int64)
            left[self.cat_nodes] = self.cat_left[np.arange(len(self.cat_nodes))[:, None], code]
        return left

    def patterns(self, left: np.ndarray) -> np.ndarray:
        """(leaves, rows) int64: each leaf's pattern z (bit k: the row agrees with every split on the leaf's k-th
        path feature) from `sides` (exact sums of integers: the conversion truncates nothing)."""
        z = self.pattern_once @ left
        if self.repeat_bits.shape[1]:
            agree = (self.repeat_mismatch @ left) == 0
            z += self.repeat_bits @ agree.astype(z.dtype)
        return z.astype(np.int64)

    def agrees(self, left: np.ndarray, leaves: np.ndarray) -> np.ndarray:
        """Per row: do `sides` send it down the leaf LightGBM's `pred_leaf` gives in every tree?"""
        return self._reaches(self.patterns(left), leaves)

    def _reaches(self, z: np.ndarray, leaves: np.ndarray) -> np.ndarray:
        """`agrees` from the rows' `patterns`: a row reaches a leaf when it agrees with every split on its path."""
        mine = self.internal_of[leaves[:, self.split_trees] + np.asarray(self.tree_offsets)[self.split_trees]]
        return (z[mine, np.arange(len(leaves))[:, None]] == self.leaf_full[mine]).all(axis=1)

    def grouped(
        self, X: np.ndarray, groups: np.ndarray, n_groups: int, leaves: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """((rows, n_groups) TreeSHAP summed by group, per row: `agrees` with `leaves` (all True without))."""
        table = self.table(groups, n_groups)
        out = np.zeros((len(X), n_groups))
        ok = np.ones(len(X), dtype=bool)
        for lo in range(0, len(X), CHUNK):
            rows = slice(lo, lo + CHUNK)
            z = self.patterns(self.sides(X[rows]))
            if leaves is not None:
                ok[rows] = self._reaches(z, leaves[rows])
            out[rows] = table.grouped(self, z)
        return out, ok

    def has_table(self, groups: np.ndarray, n_groups: int) -> bool:
        return (n_groups, np.asarray(groups, dtype=np.int64).tobytes()) in self._tables

    def table(self, groups: np.ndarray, n_groups: int) -> _GroupTable:
        """The grouping's tables, built once per booster and grouping (`groups[j]`: feature j's group, -1 none)."""
        groups = np.asarray(groups, dtype=np.int64)
        key = (n_groups, groups.tobytes())
        hit = self._tables.get(key)
        if hit is None:
            hit = self._tables.setdefault(key, _GroupTable(self, groups, n_groups))
        return hit


class _GroupTable:
    """For one grouping: per (leaf, group on its path) and pattern, the leaf's TreeSHAP summed over the group."""

    def __init__(self, shap: FamilyTreeShap, groups: np.ndarray, n_groups: int):
        fam = [[int(groups[f]) for f in feats] for feats in shap.features]
        present = [sorted(set(g) - {-1}) for g in fam]
        self.n_groups = n_groups
        self.leaves = np.asarray([i for i, p in enumerate(present) if p], dtype=np.int64)  # the others add 0
        depth = shap.leaf_depth[self.leaves]
        cap = MAX_TABLE_DEPTH
        n_present = np.asarray([len(present[i]) for i in self.leaves], dtype=np.int64)
        while cap > 0 and int((np.left_shift(1, depth) * n_present)[depth <= cap].sum()) > TABLE_BUDGET:
            cap -= 1
        regular = np.asarray([min(shap.ratios[i], default=1.0) > 0 for i in self.leaves], dtype=bool)  # no empty child
        # Tabled (leaf, group) pairs sorted by group: a block's sums are one gather and one reduceat.
        tab = [(g, j) for j, i in enumerate(self.leaves) if depth[j] <= cap for g in present[i]]
        tab.sort()
        self.pair_group = np.asarray([g for g, _ in tab], dtype=np.int64)
        self.pair_leaf = np.asarray([j for _, j in tab], dtype=np.int64)  # position in self.leaves
        self.pair_leaf_index = self.leaves[self.pair_leaf]  # the leaf itself, as `FamilyTreeShap.patterns` rows
        sizes = np.left_shift(1, depth[self.pair_leaf])
        self.pair_base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.values = np.zeros(int(sizes.sum()))
        self.group_start = np.searchsorted(self.pair_group, np.arange(n_groups))
        self.groups_present = np.unique(self.pair_group)
        for d in np.unique(depth[self.pair_leaf]):
            which = np.flatnonzero(depth[self.pair_leaf] == d)
            step = max(1, 1_000_000 // ((1 << d) * (d // 2 + 1)))
            for lo in range(0, len(which), step):
                part = which[lo : lo + step]
                leaves = self.leaves[self.pair_leaf[part]]
                r, mask = _ratios(shap, leaves), self._masks(fam, leaves, self.pair_group[part])
                if regular[self.pair_leaf[part]].all():
                    t, w = _gauss_legendre(d // 2 + 1)
                    F, S = _doubling(r, mask, t)
                    summed = (F * S) @ w
                else:  # a split with an empty child: leave-one-out products
                    z = ((np.arange(1 << d)[:, None] >> np.arange(d)[None, :]) & 1).astype(float)
                    summed = (_shapley(r[:, None, :], z[None, :, :]) * mask[:, None, :]).sum(axis=2)
                summed *= shap.leaf_value[leaves][:, None]
                self.values[(self.pair_base[part][:, None] + np.arange(1 << d)[None, :]).ravel()] = summed.ravel()
        # Deeper leaves: a table per half of the path's features (F and S multiply and add across halves).
        self.halves: list[_Halves] = []
        for d in np.unique(depth[(depth > cap) & regular]):
            js = np.flatnonzero((depth == d) & regular)
            pairs = [(j, g) for j in js for g in present[self.leaves[j]]]
            self.halves.append(_Halves(shap, self, fam, int(d), pairs))
        deep = np.flatnonzero((depth > cap) & ~regular)  # positions in self.leaves, computed per row
        self.deep = {int(d): deep[depth[deep] == d] for d in np.unique(depth[deep])}
        self.deep_ratios = {d: _ratios(shap, self.leaves[j]) for d, j in self.deep.items()}
        self.deep_onehot = {
            d: (np.asarray([fam[i] for i in self.leaves[j]])[:, :, None] == np.arange(n_groups)).astype(float)
            for d, j in self.deep.items()
        }
        if (depth > cap).any():
            log.debug(
                "TreeSHAP tables: %d leaves deeper than %d features in half tables", int((depth > cap).sum()), cap
            )

    @staticmethod
    def _masks(fam: list[list[int]], leaves: np.ndarray, pair_group: np.ndarray) -> np.ndarray:
        """(pairs, depth): which of the leaf's path features are in the pair's group."""
        return np.asarray([[f == g for f in fam[i]] for i, g in zip(leaves, pair_group, strict=True)])

    def grouped(self, shap: FamilyTreeShap, patterns: np.ndarray) -> np.ndarray:
        """(rows, n_groups) from `FamilyTreeShap.patterns` (every leaf's)."""
        out = np.zeros((patterns.shape[1], self.n_groups))
        if len(self.pair_leaf):
            values = np.take(self.values, self.pair_base[:, None] + patterns[self.pair_leaf_index])
            starts = self.group_start[self.groups_present]
            out[:, self.groups_present] = np.add.reduceat(values, starts, axis=0).T
        if not self.halves and not self.deep:
            return out
        z = patterns[self.leaves]  # (visited leaves, rows)
        for halves in self.halves:
            out += halves.grouped(z)
        for d, j in self.deep.items():
            zk = ((z[j][:, :, None] >> np.arange(d)) & 1).astype(float)  # (leaves, rows, d)
            phi = _shapley(self.deep_ratios[d][:, None, :], zk) * shap.leaf_value[self.leaves[j]][:, None, None]
            out += np.einsum("lrk,lkg->rg", phi, self.deep_onehot[d])
        return out


class _Halves:
    """(leaf, group) pairs of one path depth d, too deep for a full table: per half of the path's features
    (the first d // 2 and the rest), F = prod q and S = sum over the group of (z - r) / q at each node t,
    per pattern of that half; a row's value is V sum_t w F_A F_B (S_A + S_B)."""

    def __init__(self, shap: FamilyTreeShap, table: _GroupTable, fam: list[list[int]], d: int, pairs: list):
        self.d, self.h = d, d // 2
        self.leaf = np.asarray([j for j, _ in pairs], dtype=np.int64)  # position in table.leaves
        leaves = table.leaves[self.leaf]
        r = _ratios(shap, leaves)
        mask = table._masks(fam, leaves, np.asarray([g for _, g in pairs]))
        t, self.w = _gauss_legendre(d // 2 + 1)
        self.FA, self.SA = _doubling(r[:, : self.h], mask[:, : self.h], t)  # (pairs, 2^h, Q)
        self.FB, self.SB = _doubling(r[:, self.h :], mask[:, self.h :], t)
        self.value = shap.leaf_value[leaves]
        self.onehot = (np.asarray([g for _, g in pairs])[:, None] == np.arange(table.n_groups)).astype(float)

    def grouped(self, z: np.ndarray) -> np.ndarray:
        zp = z[self.leaf]  # (pairs, rows)
        a, b = (zp & ((1 << self.h) - 1))[:, :, None], (zp >> self.h)[:, :, None]
        fa, sa = np.take_along_axis(self.FA, a, axis=1), np.take_along_axis(self.SA, a, axis=1)  # (pairs, rows, Q)
        fb, sb = np.take_along_axis(self.FB, b, axis=1), np.take_along_axis(self.SB, b, axis=1)
        per_pair = ((fa * fb * (sa + sb)) @ self.w) * self.value[:, None]  # (pairs, rows)
        return per_pair.T @ self.onehot


def _sparse(values: list, rows: list, columns: list, shape: tuple[int, int], dtype: Any) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape, dtype)


def _ratios(shap: FamilyTreeShap, leaves: np.ndarray) -> np.ndarray:
    return np.asarray([shap.ratios[i] for i in leaves])


@functools.cache
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on [0, 1], exact for polynomials of degree up to 2n - 1."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1) / 2, weights / 2


def _shapley(r: np.ndarray, z: np.ndarray) -> np.ndarray:
    """phi_k / V of the product game, broadcast over leading axes (last axis: the path's features):
    (z_k - r_k) * integral_0^1 prod_{j != k} (r_j + t (z_j - r_j)) dt, Gauss-Legendre on [0, 1]."""
    t, w = _gauss_legendre(max(r.shape[-1], z.shape[-1]) // 2 + 1)
    q = r[..., None] + t * (z - r)[..., None]  # (..., d, Q)
    ones = np.ones((*q.shape[:-2], 1, q.shape[-1]))
    before = np.cumprod(np.concatenate([ones, q[..., :-1, :]], axis=-2), axis=-2)  # prod over j < k
    after = np.cumprod(np.concatenate([ones, q[..., :0:-1, :]], axis=-2), axis=-2)[..., ::-1, :]  # j > k
    return (z - r) * ((before * after) @ w)


def _doubling(r: np.ndarray, mask: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (pairs, d) ratios r > 0 and group masks, at every pattern z of the d features (index sum z_k 2^k)
    and node t: F = prod_k q_k and S = sum_{k in group} (z_k - r_k) / q_k, q_k = r_k + t (z_k - r_k), built
    by doubling the patterns one feature at a time (O(2^d) per pair and node). F * S summed with the
    Gauss-Legendre weights is the group's Shapley value / V (the leave-one-out product is F / q_k)."""
    pairs, d = r.shape
    F = np.ones((pairs, 1, len(t)))
    S = np.zeros((pairs, 1, len(t)))
    off_path = -1.0 / (1.0 - t)  # (0 - r) / (r (1 - t)): the same for every r
    for k in range(d):
        rk = r[:, k, None, None]
        on = rk + t * (1.0 - rk)  # q at z_k = 1
        mk = mask[:, k, None, None]
        F = np.concatenate([F * (rk * (1.0 - t)), F * on], axis=1)
        S = np.concatenate([S + mk * off_path, S + mk * ((1.0 - rk) / on)], axis=1)
    return F, S


def grouped_treeshap(booster: Any, X: np.ndarray, leaves: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(rows, n_groups) LightGBM `pred_contrib` summed by group (bias column dropped), from the tables
    where every one of the row's splits reproduces `leaves` (its `pred_leaf`), else `pred_contrib` itself."""
    built = _SHAP.get(booster)
    if (built is None or not built.has_table(groups, n_groups)) and len(X) < TABLE_MIN_ROWS:
        return _pred_contrib(booster, X, groups, n_groups)
    shap = family_treeshap(booster)
    if not shap.supported or booster.num_model_per_iteration() != 1:
        return _pred_contrib(booster, X, groups, n_groups)
    out, agrees = shap.grouped(X, groups, n_groups, leaves)
    if not agrees.all():  # a split decided differently from LightGBM: LightGBM's own TreeSHAP for those rows
        log.warning("TreeSHAP tables: %d of %d rows fall back to pred_contrib", int((~agrees).sum()), len(X))
        out[~agrees] = _pred_contrib(booster, X[~agrees], groups, n_groups)
    return out


def _pred_contrib(booster: Any, X: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    return group_columns(np.asarray(booster.predict(X, pred_contrib=True, num_threads=1))[:, :-1], groups, n_groups)


_SHAP: weakref.WeakKeyDictionary[Any, FamilyTreeShap] = weakref.WeakKeyDictionary()


def family_treeshap(booster: Any) -> FamilyTreeShap:
    """The booster's `FamilyTreeShap`, built once per booster (serving builds it at model load)."""
    if booster not in _SHAP:  # two threads may both build it: the same tables either way
        _SHAP[booster] = FamilyTreeShap(booster)
    return _SHAP[booster]


def register_family_treeshap(booster: Any, shap: FamilyTreeShap) -> None:
    """Make `shap` the booster's `FamilyTreeShap` (tables built elsewhere for this booster, e.g. read back from
    `serving.models_store`'s store), so `family_treeshap(booster)` and `grouped_treeshap` use it."""
    if not isinstance(shap, FamilyTreeShap):
        raise TypeError(f"expected a FamilyTreeShap, got {type(shap).__name__}")
    _SHAP[booster] = shap
