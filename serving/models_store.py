"""Champions from MLflow into the BentoML model store, and from there into memory.

- `import_champions()` copies the MLflow version behind each task's `champion` alias into the
  BentoML model store (`Settings().bentoml_home`), as `clientlens-<task>`, recording the MLflow
  name, version and run id as labels (and training date and headline metrics as metadata).
  It resolves the alias to a version first and imports `models:/<name>/<version>`, so the
  recorded version is exactly the one copied even if the alias moves meanwhile. Importing is
  idempotent: nothing is copied when the store's latest `clientlens-<task>` already is that
  version, so `clientlens-<task>:latest` always names the current champion.
- `load_model_set()` loads the latest stored model of each task and unwraps the MLflow pyfunc
  once into its `training.model.TabularModel` core, which is what the service calls; the core's
  booster is compiled to native code for prediction (`serving.compiled`, verified against the
  booster, cached per model in `Settings.compiled_dir`; `Settings.compiled_models` false turns it off),
  and gets its explanation tables (`prepare_explanations`: read from `Settings.compiled_dir` when stored
  for that booster, else built and stored there).

Every function takes the `Settings` (read once by the caller; `Settings()` when omitted) and
changes no process-wide state: no environment variable, no MLflow global URI.
- `champion_versions()` asks MLflow which version each alias points at (the service polls it
  to pick up a newly promoted champion).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ClientlensError
from core.settings import Settings
from core.tasks import CHURN, TASK_NAMES

logger = logging.getLogger(__name__)

CHAMPION = "champion"
# Headline metric names (DESIGN §11); anything else a run logs stays in MLflow.
HEADLINE_METRICS = (
    "roc_auc", "pr_auc", "ks", "brier", "lift_at_10", "macro_f1", "log_loss", "accuracy", "rmse", "r2",
    "upgrade_auc", "hidden_aggressive_auc", "hidden_aggressive_precision_at_5pct",
)  # fmt: skip


def model_name(task: str) -> str:
    """Registered model name in MLflow (`training.registry.model_name`), also used in the BentoML store."""
    from training.registry import model_name as registered_name

    return registered_name(task)


@dataclass(frozen=True)
class LoadedModel:
    """One task's model in memory: the `TabularModel` core plus where it came from."""

    task: str
    core: Any  # training.model.TabularModel
    version: str  # MLflow model version
    bento_tag: str
    run_id: str | None = None
    trained_at: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    def info(self, aliases: Iterable[str] = (CHAMPION,)) -> dict[str, Any]:
        return {
            "task": self.task,
            "name": model_name(self.task),
            "version": self.version,
            "aliases": sorted(aliases),
            "bento_tag": self.bento_tag,
            "run_id": self.run_id,
            "trained_at": self.trained_at,
            "metrics": dict(self.metrics),
            "compiled": getattr(self.core, "predictor", None) is not None,
        }


@dataclass(frozen=True)
class ModelSet:
    """The models a request is scored with. Immutable: a reload builds a new set and swaps it."""

    models: Mapping[str, LoadedModel]

    @property
    def versions(self) -> dict[str, str]:
        return {task: m.version for task, m in self.models.items()}

    @property
    def cores(self) -> dict[str, Any]:
        return {task: m.core for task, m in self.models.items()}

    def replace(self, **loaded: LoadedModel) -> ModelSet:
        return ModelSet({**self.models, **loaded})


def _bentoml(settings: Settings):
    """The bentoml module, checked to use the configured store. BentoML fixes its store from
    `BENTOML_HOME` when it is first imported in a process, so a process that serves or imports
    models is started with it set (`serving.process.service_env` does); this module never
    changes the environment, it refuses to write to another store than the settings name."""
    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer

    store = Path(BentoMLContainer.bentoml_home.get()).resolve()
    if store != settings.bentoml_home:
        raise ClientlensError(
            f"this process uses the BentoML store {store}, the settings name {settings.bentoml_home}: "
            f"start it with BENTOML_HOME={settings.bentoml_home}"
        )
    return bentoml


def _client(settings: Settings):
    """An MLflow client on the configured store (MLflow's process-wide URIs are left alone)."""
    import mlflow

    uri = settings.tracking_uri
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion_info(
    tasks: Iterable[str] = TASK_NAMES, alias: str = CHAMPION, settings: Settings | None = None
) -> dict[str, dict[str, Any] | None]:
    """Per task, the MLflow version `alias` points at and all its aliases (None when unset)."""
    from mlflow.exceptions import MlflowException

    client = _client(settings or Settings())
    out: dict[str, dict[str, Any] | None] = {}
    for task in tasks:
        try:
            mv = client.get_model_version_by_alias(model_name(task), alias)
            out[task] = {"version": str(mv.version), "aliases": sorted(getattr(mv, "aliases", None) or [alias])}
        except MlflowException:
            out[task] = None
    return out


def champion_versions(
    tasks: Iterable[str] = TASK_NAMES, alias: str = CHAMPION, settings: Settings | None = None
) -> dict[str, str | None]:
    """The MLflow version each task's `alias` points at (None when unset or unregistered)."""
    return {task: (info or {}).get("version") for task, info in champion_info(tasks, alias, settings).items()}


def _stored(task: str, settings: Settings) -> list[Any]:
    bentoml = _bentoml(settings)
    from bentoml.exceptions import NotFound

    try:
        models = [m for m in bentoml.models.list(model_name(task)) if m.tag.name == model_name(task)]
    except NotFound:
        return []
    return sorted(models, key=lambda m: m.info.creation_time)


def latest_stored(task: str, settings: Settings | None = None):
    """The newest `clientlens-<task>` in the BentoML store, or None."""
    models = _stored(task, settings or Settings())
    return models[-1] if models else None


def _headline(metrics: Mapping[str, float]) -> dict[str, float]:
    """Headline metrics, whether logged bare (`roc_auc`) or with a split prefix (`test_roc_auc`)."""
    out: dict[str, float] = {}
    for key, value in sorted(metrics.items()):
        for name in HEADLINE_METRICS:
            if key == name or (key.endswith(f"_{name}") and key.split("_")[0] in ("test", "holdout", "valid")):
                out.setdefault(name if key == name else key, float(value))
    return out


def import_champion(task: str, alias: str = CHAMPION, settings: Settings | None = None):
    """Copy the MLflow version behind `alias` into the BentoML store (idempotent); returns the bento model."""
    settings = settings or Settings()
    bentoml = _bentoml(settings)
    from mlflow.artifacts import download_artifacts

    client = _client(settings)
    name = model_name(task)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        raise ClientlensError(
            f"no {alias!r} version of {name} in MLflow at {settings.tracking_uri}: "
            f"train it (`clientlens train {task}`) and promote it (`clientlens promote {task}`)"
        ) from exc
    version = str(mv.version)
    latest = latest_stored(task, settings)
    if (
        latest is not None
        and latest.info.labels.get("mlflow_version") == version
        and latest.info.labels.get("mlflow_run_id") == str(mv.run_id)
    ):
        return latest
    run = client.get_run(mv.run_id) if mv.run_id else None
    metrics = _headline(run.data.metrics) if run else {}
    trained_at = (
        datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC).isoformat(timespec="seconds")
        if run and run.info.start_time
        else None
    )
    labels = {"task": task, "mlflow_name": name, "mlflow_version": version, "mlflow_run_id": str(mv.run_id)}
    metadata: dict[str, Any] = {
        "mlflow_name": name,
        "mlflow_version": version,
        "mlflow_run_id": str(mv.run_id),
        "mlflow_alias_at_import": alias,
        "tracking_uri": settings.tracking_uri,
        "trained_at": trained_at or "",
        **{f"metric_{k}": v for k, v in metrics.items()},
    }
    logger.info("importing %s version %s into the BentoML store", name, version)
    # Downloaded with explicit URIs first: BentoML would resolve `models:/` through MLflow's
    # process-wide tracking URI, which this module does not set.
    with tempfile.TemporaryDirectory(prefix="clientlens-import-") as tmp:
        local = download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=tmp,
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.tracking_uri,
        )
        return bentoml.mlflow.import_model(name, local, labels=labels, metadata=metadata)


def import_champions(
    tasks: Iterable[str] = TASK_NAMES, alias: str = CHAMPION, settings: Settings | None = None
) -> dict[str, str]:
    """Import every task's champion into the BentoML store; returns task → bento tag."""
    settings = settings or Settings()
    return {task: str(import_champion(task, alias, settings).tag) for task in tasks}


def load_stored(bento_model, *, compile_trees: bool = True, settings: Settings | None = None) -> LoadedModel:
    """Load one stored model and unwrap its pyfunc once into the `TabularModel` core; with
    `compile_trees`, predict through the compiled booster (`serving.compiled.compile_core`)."""
    settings = settings or Settings()
    bentoml = _bentoml(settings)
    from serving import compiled

    pyfunc = bentoml.mlflow.load_model(bento_model)
    python_model = pyfunc.unwrap_python_model()
    core = getattr(python_model, "core", None)
    if core is None:
        raise ClientlensError(f"{bento_model.tag}: the MLflow model carries no `core` TabularModel")
    labels, meta = bento_model.info.labels, bento_model.info.metadata
    if compile_trees:
        compiled.compile_core(core, settings.compiled_dir, enabled=settings.compiled_models)
    prepare_explanations(core, settings.compiled_dir)
    if compile_trees:
        mark_ready(core, labels, settings)
    return LoadedModel(
        task=labels.get("task") or bento_model.tag.name.removeprefix("clientlens-"),
        core=core,
        version=labels.get("mlflow_version", "unknown"),
        bento_tag=str(bento_model.tag),
        run_id=labels.get("mlflow_run_id"),
        trained_at=meta.get("trained_at") or None,
        metrics={k.removeprefix("metric_"): float(v) for k, v in meta.items() if k.startswith("metric_")},
    )


# --- explanation tables ---------------------------------------------------------------------------
# The per-leaf tables behind `explain` (path attributions) and churn drivers (TreeSHAP by family) take seconds
# to build (4.3 s on the demo's churn model, #18). They are a pure function of the booster's text and of the
# code that builds them, so they are built once (at compile time in the demo) and stored beside the compiled
# objects under a key of both: a new model version, or a change to that code, is a new key, never a stale table.
EXPLANATION_SUFFIX = ".tables.pkl"
_TABLE_CODE = ("training.model", "training.treeshap", "training.segments")


def explanation_key(booster: Any) -> str:
    """The content key of `booster`'s explanation tables: its model text and the source of the code building them."""
    import hashlib

    h = hashlib.sha256(booster.model_to_string().encode())
    for source in _module_sources(_TABLE_CODE):
        h.update(b"\0" + source)
    return h.hexdigest()[:32]


def _module_sources(names: Iterable[str]) -> Iterator[bytes]:
    """The source file of each module named, found without importing it (OSError where it is not readable)."""
    import importlib.util

    for name in names:
        spec = importlib.util.find_spec(name)
        yield Path(spec.origin if spec and spec.origin else name).read_bytes()


def _build_explanations(core: Any) -> tuple[Any, Any]:
    """(path attributions, family TreeShap or None) of `core`'s booster, with the tables serving reads."""
    from training.model import path_attribution
    from training.segments import prepare_drivers
    from training.treeshap import family_treeshap

    paths = path_attribution(core.booster)
    if core.task != CHURN.name:
        return paths, None
    prepare_drivers(core)
    return paths, family_treeshap(core.booster)


def _attach_explanations(core: Any, paths: Any, shap: Any) -> None:
    """Make `paths` / `shap` the booster's tables, as `path_attribution` / `family_treeshap` would build them."""
    from training.model import register_path_attribution
    from training.treeshap import register_family_treeshap

    register_path_attribution(core.booster, paths)
    if shap is not None:
        register_family_treeshap(core.booster, shap)


def explanation_path(booster: Any, directory: Path) -> Path:
    """Where `prepare_explanations` stores `booster`'s tables in `directory`."""
    return Path(directory) / f"{explanation_key(booster)}{EXPLANATION_SUFFIX}"


def prepare_explanations(core: Any, directory: Path | None) -> bool:
    """Give a binary or ordinal `core` its explanation tables (churn: also the drivers'), read from `directory`
    when stored there for this booster and this code, else built (and stored when `directory` is given).
    True if they were read from the store; False if built (or the model kind has none)."""
    if core.kind not in ("binary", "ordinal"):
        return False
    import pickle

    from core.io import write_atomic

    try:
        path = explanation_path(core.booster, directory) if directory else None
    except OSError:  # the building code's source is not readable (e.g. bytecode only): build, never store
        logger.warning("cannot key the explanation tables on their code; building them", exc_info=True)
        path = None
    if path is not None and path.is_file():
        try:
            with path.open("rb") as f:
                paths, shap = pickle.load(f)  # our own cache, beside the compiled code the worker runs anyway
            _attach_explanations(core, paths, shap)
            return True
        except Exception:
            logger.warning("unreadable explanation tables %s; building them", path, exc_info=True)
    paths, shap = _build_explanations(core)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            blob = pickle.dumps((paths, shap), protocol=pickle.HIGHEST_PROTOCOL)
            write_atomic(path, lambda tmp: tmp.write_bytes(blob))
        except OSError:
            logger.warning("could not store the explanation tables at %s", path, exc_info=True)
    return False


# --- ready records ------------------------------------------------------------------------------------
# The server's parent loads every champion before its workers start (`service.import_champions`), only so that
# each booster is compiled and its explanation tables stored once rather than in every worker: 3-4 s of every
# `clientlens serve` when all of that is cached already (#18). A ready record says so for one MLflow model
# version without loading it: written once its compiled object and tables are in `Settings.compiled_dir`, and
# named by the version (name, number, run id), the compiling host and the code that keys and builds both, so a
# new version, host or code has no record. A record whose files are gone does not count; and a wrong answer
# only costs time, never a stale model: each worker still loads, compiles (or reads the cache) and verifies.
READY_DIR = "ready"
_READY_CODE = ("serving.compiled", "serving.models_store", *_TABLE_CODE)


def ready_path(labels: Mapping[str, str], settings: Settings) -> Path | None:
    """The ready record of the MLflow version a stored model's `labels` name (None without those labels)."""
    import hashlib

    from serving.compiled import host_parts

    facts = [labels.get("mlflow_name"), labels.get("mlflow_version"), labels.get("mlflow_run_id")]
    if not all(facts):
        return None
    h = hashlib.sha256()
    for part in (*facts, f"compiled={settings.compiled_models}", *(host_parts() if settings.compiled_models else ())):
        h.update(str(part).encode() + b"\0")
    for source in _module_sources(_READY_CODE):
        h.update(source + b"\0")
    return settings.compiled_dir / READY_DIR / f"{h.hexdigest()[:32]}.json"


def mark_ready(core: Any, labels: Mapping[str, str], settings: Settings) -> bool:
    """Write the ready record of `core` (compiled per `settings.compiled_models`, its tables prepared) when its
    object and tables are in `settings.compiled_dir`; True if written."""
    import json

    from core.io import write_atomic
    from serving.compiled import object_path

    try:
        path = ready_path(labels, settings)
        if path is None or (settings.compiled_models and getattr(core, "predictor", None) is None):
            return False  # not compiled (off, failed or disagreeing): a worker would try again, so no record
        files = [object_path(core.booster.model_to_string(), settings.compiled_dir)] if settings.compiled_models else []
        if core.kind in ("binary", "ordinal"):  # the kinds with explanation tables (`prepare_explanations`)
            files.append(explanation_path(core.booster, settings.compiled_dir))
        if not all(f.is_file() for f in files):
            return False
        body = json.dumps({"model": dict(labels), "files": [f.name for f in files]}, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: tmp.write_text(body))
        return True
    except OSError:
        logger.warning("could not write the ready record of %s", labels, exc_info=True)
        return False


def is_ready(labels: Mapping[str, str], settings: Settings) -> bool:
    """True if the MLflow version `labels` name has a ready record whose files are all still there."""
    import json

    try:
        path = ready_path(labels, settings)
        if path is None or not path.is_file():
            return False
        files = json.loads(path.read_text())["files"]
        return all((settings.compiled_dir / name).is_file() for name in files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def serving_ready(tasks: Iterable[str] = TASK_NAMES, settings: Settings | None = None) -> bool:
    """Every task's latest stored model is compiled and has its explanation tables in the cache (its ready
    record, `is_ready`), checked without loading any model."""
    settings = settings or Settings()
    for task in tasks:
        model = latest_stored(task, settings)
        if model is None or not is_ready(model.info.labels, settings):
            return False
    return True


def prepare_version(core: Any, name: str, version: str, run_id: str, settings: Settings) -> None:
    """Compile `core` (MLflow model `name` version `version` of run `run_id`) and prepare its explanation
    tables in `settings.compiled_dir`, as a worker loading it would, and write its ready record (the demo
    does this for each new model while the next trains)."""
    from serving import compiled

    compiled.compile_core(core, settings.compiled_dir, enabled=settings.compiled_models)
    prepare_explanations(core, settings.compiled_dir)
    mark_ready(core, {"mlflow_name": name, "mlflow_version": str(version), "mlflow_run_id": str(run_id)}, settings)


def load_task(task: str, *, compile_trees: bool = True, settings: Settings | None = None) -> LoadedModel:
    settings = settings or Settings()
    model = latest_stored(task, settings)
    if model is None:
        raise ClientlensError(
            f"no {model_name(task)} in the BentoML store at {settings.bentoml_home}: run `clientlens serve` "
            "with MLflow reachable, or `serving.models_store.import_champions()`"
        )
    return load_stored(model, compile_trees=compile_trees, settings=settings)


def load_model_set(
    tasks: Iterable[str] = TASK_NAMES, *, compile_trees: bool = True, settings: Settings | None = None
) -> ModelSet:
    """The latest stored model of every task, loaded."""
    settings = settings or Settings()
    return ModelSet({task: load_task(task, compile_trees=compile_trees, settings=settings) for task in tasks})


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.models_store`: import every champion into the BentoML store, print JSON."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m serving.models_store", description=main.__doc__)
    parser.add_argument("--alias", default=CHAMPION)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(import_champions(alias=args.alias, settings=Settings())))
    except ClientlensError as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
