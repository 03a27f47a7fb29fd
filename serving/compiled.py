"""Champion boosters compiled to native code for the serving hot path (lleaves, i.e. LLVM).

LightGBM's own `predict` walks every tree through generic code; for the service's batches it
was the biggest single cost (three boosters at 8–14k rows/s on one core, benchmarks/RESULTS.md
"Serving"). lleaves compiles a LightGBM model file into one native function with the same
splits, missing-value rules and categorical bitsets, and the same objective transform, so the
output is LightGBM's up to floating-point summation order (measured: at most ~2e-15).

Safety net, because a compiled model that disagrees must never be served: after compiling,
`compile_core` scores a probe matrix built from the model's own split thresholds (values just
below, at and above every threshold, missing values, every category code seen in a split and
unseen ones) with both the compiled function and `Booster.predict`; if any output differs by
more than `TOLERANCE`, the compiled function is discarded and the booster is used, with a
warning. Explanations (`pred_contrib`) always come from the booster.

Code generation (#18): lleaves optimises the IR (LLVM -O3), then generates machine code at LLVM's
-O2, whose cost grows faster than the forest: the one function lleaves emits per forest inlines every
tree. The demo's churn model (141 trees, 9,176 leaves) took 27 CPU-s, its tier model (3,733 leaves)
6 s, risk (300 leaves) 0.3 s. Generated at -O0 after the same IR optimisation, churn takes 5 s and tier
3 s with bitwise the same outputs, their trees 1.5x / 1.9x slower per batch row (a few microseconds a
customer). So a forest of more than `O2_MAX_LEAVES` leaves is generated at -O0 (`codegen_opt`);
`benchmarks/bench_compile.py` measures both levels side by side.

Compiled objects are cached under `<clientlens home>/compiled/` (`CLIENTLENS_COMPILED_DIR`),
content-addressed by the model text, the lleaves and llvmlite versions, the code-generation level and the host CPU, and
written to a temporary name and renamed, so concurrent workers never read a partial file.
`CLIENTLENS_COMPILED_MODELS=0` turns compilation off (the booster is used everywhere).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_path

logger = logging.getLogger(__name__)

TOLERANCE = 1e-9  # the service promises batch == HTTP to 1e-9
# LightGBM treats |x| <= kZeroThreshold (1e-35f) as zero; lleaves 1.3 resolves the band's edge
# (exactly -1e-35f) differently (found by the probe below). Rows with any nonzero value this close
# to zero are therefore scored by the booster; real features never get there.
ZERO_BAND = 1e-30
PROBE_ROWS = 512
# Code generation (module docstring): lleaves' -O2 up to this many leaves in the whole forest (~2 CPU-s of
# compiling), -O0 above.
O2_MAX_LEAVES = 2_000


def codegen_opt(model_text: str) -> int:
    """LLVM's machine-code optimisation level for a LightGBM model text: 2 (lleaves' own) for a forest of at most
    `O2_MAX_LEAVES` leaves, else 0 (module docstring)."""
    leaves = sum(int(line[11:]) for line in model_text.splitlines() if line.startswith("num_leaves="))
    return 2 if leaves <= O2_MAX_LEAVES else 0


def _host_cpu_features(llvm: Any) -> str:
    """The host CPU's feature string for LLVM ("" where LLVM cannot read it): part of the cache key and of the
    target machine the code is generated for, so both always see the same value."""
    try:
        return llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        return ""


def host_parts() -> tuple[str, ...]:
    """What a compiled object depends on besides its model text and code-generation level: the lleaves and
    llvmlite versions and the host CPU (name and feature string)."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    return version("lleaves"), version("llvmlite"), llvm.get_host_cpu_name(), _host_cpu_features(llvm)


def _cache_key(model_text: str, opt: int) -> str:
    lleaves_version, llvmlite_version, cpu, features = host_parts()
    h = hashlib.sha256()
    parts = (model_text, lleaves_version, llvmlite_version, f"codegen-O{opt}", cpu, features)
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def object_path(model_text: str, directory: Path) -> Path:
    """Where `compile_booster` caches the compiled object of the model with this text."""
    return directory / f"{_cache_key(model_text, codegen_opt(model_text))}.o"


def _walk(node: dict[str, Any], numeric: dict[int, set[float]], categorical: dict[int, set[int]]) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if "split_feature" not in n:
            continue
        f = int(n["split_feature"])
        if n.get("decision_type") == "==":
            categorical.setdefault(f, set()).update(int(c) for c in str(n["threshold"]).split("||") if c != "")
        else:
            numeric.setdefault(f, set()).add(float(n["threshold"]))
        stack.extend((n["left_child"], n["right_child"]))


def probe_matrix(booster: Any, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that exercise the model's splits: per feature, values just below / at / above its
    thresholds, NaN, and for categorical features every code a split names plus unseen ones."""
    dump = booster.dump_model()
    n_features = booster.num_feature()
    numeric: dict[int, set[float]] = {}
    categorical: dict[int, set[int]] = {}
    for tree in dump["tree_info"]:
        _walk(tree["tree_structure"], numeric, categorical)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, n_features))
    for f in range(n_features):
        if f in categorical:
            codes = np.array(sorted(categorical[f]), dtype=np.float64)
            pool = np.concatenate([codes, [codes.max() + 1, codes.max() + 7, 0.0, np.nan]])
        elif f in numeric:
            t = np.array(sorted(numeric[f]))
            step = np.maximum(np.abs(t) * 1e-6, 1e-9)
            pool = np.concatenate([t - step, t, t + step, [t.min() - 1, t.max() + 1, np.nan, 0.0]])
        else:
            pool = np.array([0.0, 1.0, np.nan])
        X[:, f] = rng.choice(pool, size=rows)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values in every column, whatever its pool
    return X


def _entry(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """`model.predict(X, n_jobs=1)` for a C-contiguous float64 matrix, calling the compiled function
    directly: lleaves' wrapper converts and checks the input and builds two ctypes pointers per call,
    which for one customer costs as much as the trees (#18). None when this lleaves build does not
    expose what that needs (then its own `predict` is used; `compile_core`'s probe checks either)."""
    import ctypes

    try:
        address = ctypes.cast(model._c_entry_func, ctypes.c_void_p).value
        n_features, n_classes = int(model.num_feature()), int(model._n_classes)
        if not address or not model.use_fp64:
            return None
    except (AttributeError, TypeError, ValueError):
        return None
    func = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)(address)

    def call(X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        if X.shape[1] != n_features or n >= 2**31 - 1:
            return model.predict(X, n_jobs=1)  # lleaves' own checks and messages
        out = np.zeros(n if n_classes == 1 else (n, n_classes), dtype=np.float64)
        func(X.ctypes.data, out.ctypes.data, 0, n)
        return out

    call.model = model  # type: ignore[attr-defined]  # keeps the engine (and so the address) alive
    return call


def compile_model(model: Any, cache: Path, opt: int) -> None:
    """`lleaves.Model.compile(cache=...)` (same IR, same -O3 IR passes, same entry point) with the machine code
    generated at LLVM level `opt`: loads `cache` when it exists, else compiles and writes the object there.
    lleaves 1.3 takes no code-generation level, so this repeats its last step (`compile_module_to_asm`) with
    one; a build without those internals compiles through its own `compile` (at its -O2)."""
    try:
        import llvmlite.binding as llvm
        from lleaves import compiler
        from lleaves.lleaves import get_entry_func_type
        from lleaves.llvm_binding import _initialize_llvm
    except ImportError:  # pragma: no cover - another lleaves layout
        model.compile(cache=str(cache))
        return
    root = "forest_root"
    if cache.exists():
        module = llvm.parse_assembly("")  # as lleaves does: the object comes from the cache
    else:
        module = compiler.compile_to_module(model.model_file, froot_func_name=root, use_fp64=True)
    _initialize_llvm()
    features = _host_cpu_features(llvm)
    target = llvm.Target.from_triple(llvm.get_process_triple())
    machine = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features, opt=opt, reloc="pic", codemodel="large"
    )
    engine = llvm.create_mcjit_compiler(module, machine)
    module.data_layout = str(engine.target_data)
    if cache.exists():
        engine.set_object_cache(getbuffer_func=lambda _: cache.read_bytes())
    else:
        engine.set_object_cache(notify_func=lambda _, buffer: cache.write_bytes(buffer))
    engine.finalize_object()
    engine.run_static_constructors()
    model._execution_engine = engine  # keeps the machine code alive with the model
    model._c_entry_func = get_entry_func_type(True)(engine.get_function_address(root))
    model.use_fp64, model.is_compiled = True, True


def compile_booster(booster: Any, directory: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Compile (or load from the cache) `booster`; returns `predict(X) -> Booster.predict(X)`."""
    import lleaves

    directory.mkdir(parents=True, exist_ok=True)
    text = booster.model_to_string()
    level = codegen_opt(text)
    obj = object_path(text, directory)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".compile-") as tmp:
        model_file = Path(tmp) / "model.txt"
        model_file.write_text(text)
        model = lleaves.Model(model_file=str(model_file))
        if obj.exists():
            compile_model(model, obj, level)
        else:
            with atomic_path(obj) as partial:  # other workers see the whole object or none
                compile_model(model, partial, level)  # the object is written once compiled

    entry = _entry(model)

    def predict(X: np.ndarray) -> np.ndarray:
        if entry is not None and X.dtype == np.float64 and X.ndim == 2 and X.flags.c_contiguous:
            out = entry(X)
        else:
            out = model.predict(X, n_jobs=1)
        # Every exact zero is within the band too, so equal counts mean no row has a tiny nonzero value (one
        # count per matrix instead of a mask per row: most matrices have zeros, almost none tiny values).
        band = np.abs(X) <= ZERO_BAND
        if np.count_nonzero(band) != np.count_nonzero(X == 0):
            tiny = np.flatnonzero((band & (X != 0)).any(axis=1))
            out[tiny] = booster.predict(X[tiny], num_threads=1)
        return out

    predict.model = model  # type: ignore[attr-defined]  # keeps the engine alive with the closure
    return predict


def compile_core(core: Any, directory: Path, *, enabled: bool = True) -> bool:
    """Attach a verified compiled predictor to a `training.model.TabularModel`; True if attached.

    `directory` caches the compiled objects (`Settings.compiled_dir`); `enabled=False`
    (`Settings.compiled_models`) attaches nothing. Never raises: any failure (lleaves missing, compile error, disagreement with the booster on
    the probe rows) leaves the core on `Booster.predict` and logs why.
    """
    if not enabled:
        return False
    try:
        fast = compile_booster(core.booster, directory)
        X = probe_matrix(core.booster)
        want = np.asarray(core.booster.predict(X, num_threads=1), dtype=np.float64)
        got = np.asarray(fast(X), dtype=np.float64)
        diff = float(np.max(np.abs(want - got))) if want.size else 0.0
        if want.shape != got.shape or not np.isfinite(diff) or diff > TOLERANCE:
            logger.warning(
                "compiled %s model disagrees with LightGBM (max |diff| %s); using the booster", core.task, diff
            )
            return False
    except Exception:
        logger.warning("could not compile the %s model; using the LightGBM booster", core.task, exc_info=True)
        return False
    core.use_predictor(fast)
    logger.info("%s model compiled (%d trees; probe max |diff| %.1e)", core.task, core.booster.num_trees(), diff)
    return True
