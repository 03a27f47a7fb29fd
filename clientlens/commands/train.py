"""`clientlens train TASK --features DIR` / `clientlens train --spec FILE`: tune, evaluate, log, register."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from clientlens.commands._common import DebugOpt, JsonOpt, progress, run


def check_source(task_spec, spec_file: Path, features: Path | None) -> None:
    """A missing source table is named, with the folder a relative `source` was resolved against."""
    from core.errors import InputError

    path = task_spec.source_path()
    if not path.exists():
        against = f"--features {features}" if features is not None else f"the spec file's folder {spec_file.parent}"
        raise InputError(
            f"task spec {spec_file} field source: {task_spec.source!r} not found at {path} (a relative source is "
            f"read from {against}; give --features DIR for a feature folder)"
        )


def with_tuning(spec, **changes: int | None):
    """`spec` with the given `tuning` fields replaced (None: the spec's own), validated as if the YAML had said so:
    a demo-sized or otherwise explicit budget without editing the task's spec."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return spec
    tuning = type(spec.tuning).model_validate({**spec.tuning.model_dump(), **given})
    return spec.model_copy(update={"tuning": tuning})


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        task: Annotated[str | None, typer.Argument(help="Built-in task: tier, churn or risk.")] = None,
        features: Annotated[
            Path | None,
            typer.Option(
                "--features",
                help="Feature folder holding panel.parquet; with --spec, the folder a relative `source` is read from.",
            ),
        ] = None,
        spec: Annotated[Path | None, typer.Option("--spec", help="A task spec YAML (any table).")] = None,
        trials: Annotated[
            int | None, typer.Option("--trials", min=1, help="Optuna trial budget (default: spec).")
        ] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", min=1, help="Tuning time budget in seconds.")
        ] = None,
        cv_folds: Annotated[
            int | None,
            typer.Option(
                "--cv-folds",
                min=1,
                help="Folds of the tuning objective (default: spec's tuning.cv_folds; 1 = the one train/valid "
                "split). Each trial fits this many boosters; recorded in MLflow (param tuning_cv_folds).",
            ),
        ] = None,
        max_rounds: Annotated[
            int | None,
            typer.Option(
                "--max-rounds",
                min=10,
                help="Most boosting rounds of a trial, early stopping aside (default: spec's tuning.max_rounds); "
                "recorded in MLflow (param tuning_max_rounds).",
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed for split, sampler and LightGBM.")] = 0,
        repeats: Annotated[
            int,
            typer.Option(
                "--repeats",
                min=1,
                help="Evaluate over N split seeds (seed .. seed+N-1): mean, sd and range of every metric for the "
                "model and each baseline. The model of --seed is the one registered. Default 1: a bootstrap "
                "interval of the test metric instead.",
            ),
        ] = 1,
        truth: Annotated[
            Path | None,
            typer.Option(
                "--truth",
                help="Simulator truth.parquet or its raw folder (risk evaluation; default: found via --features).",
            ),
        ] = None,
        no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip evaluation figures.")] = False,
        engine: Annotated[
            str, typer.Option("--engine", help="local (this process) or dask (trials and the booster on a cluster).")
        ] = "local",
        scheduler: Annotated[
            str | None,
            typer.Option(
                "--scheduler", help="Dask scheduler address (default with --engine dask: a 2-worker LocalCluster)."
            ),
        ] = None,
        study_storage: Annotated[
            str | None,
            typer.Option(
                "--study-storage",
                help="Optuna storage shared by the trials: a journal file path or a database URL "
                "(postgresql://...); the same URL on several machines joins one study. Needs --engine dask.",
            ),
        ] = None,
        driver_share: Annotated[
            float,
            typer.Option(
                "--driver-share",
                min=0.0001,
                max=1.0,
                help="With --engine dask: the share of customers whose rows the driver gathers for tuning, "
                "calibration and evaluation (the booster trains on every row on the cluster; below 1 needs a "
                "time split).",
            ),
        ] = 1.0,
        as_json: JsonOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        """Tune LightGBM with Optuna, calibrate, compare with the baseline, log to MLflow, register as challenger."""

        def action() -> dict:
            import logging

            import optuna

            from core.errors import InputError
            from training.spec import builtin_spec, load_spec
            from training.train import run_training

            optuna.logging.set_verbosity(logging.DEBUG if debug else logging.WARNING)
            if engine not in ("local", "dask"):
                raise InputError(f"--engine must be local or dask, got {engine!r}")
            if engine != "dask" and (scheduler or study_storage or driver_share < 1.0):
                raise InputError("--scheduler, --study-storage and --driver-share need --engine dask")
            if scheduler and not study_storage:
                # The default journal lives in this machine's home; remote workers would each write their own.
                raise InputError(
                    "--scheduler needs --study-storage: a database URL or a journal file on a file system "
                    "every worker mounts"
                )
            if spec is not None and task is not None:
                raise InputError("give either TASK (with --features) or --spec FILE, not both")
            if spec is not None:
                # `source` is relative to --features when given (as a built-in task's `panel.parquet` is, so a
                # copy of training/tasks/churn.yaml trains on a feature folder), else to the spec file's folder.
                task_spec = load_spec(spec, base_dir=features.resolve() if features is not None else None)
                check_source(task_spec, spec, features)
            elif task is not None:
                if features is None:
                    raise InputError(f"train {task}: --features DIR is required for built-in tasks")
                if not (features / "panel.parquet").is_file():
                    raise InputError(f"--features {features}: panel.parquet not found (run `clientlens features`)")
                task_spec = builtin_spec(task, features)
            else:
                raise InputError("give a TASK (tier, churn, risk) with --features DIR, or --spec FILE")
            task_spec = with_tuning(task_spec, cv_folds=cv_folds, max_rounds=max_rounds)
            n = trials or task_spec.tuning.trials
            with ExitStack() as stack:
                cluster = None
                if engine == "dask":
                    from training.distributed import dask_engine

                    cluster = stack.enter_context(
                        dask_engine(
                            scheduler, study_storage=study_storage, task=task_spec.name, driver_share=driver_share
                        )
                    )
                advance = stack.enter_context(
                    progress(f"tuning {task_spec.name}", total=n * repeats, enabled=not as_json)
                )
                out = run_training(
                    task_spec,
                    seed=seed,
                    trials=trials,
                    timeout=timeout,
                    truth_path=truth,
                    plots=not no_plots,
                    progress=advance,
                    engine=cluster,
                    repeats=repeats,
                )
                out["engine"] = {"name": engine}
                if cluster is not None:
                    out["engine"].update(
                        scheduler=scheduler, workers=cluster.n_workers, study_storage=cluster.study_storage
                    )
                    if cluster.panel is not None:
                        out["engine"].update(
                            partitions=cluster.panel.frame.npartitions, driver_share=cluster.driver_share
                        )
                return out

        def human(s: dict) -> None:
            typer.echo(f"{s['model']} v{s['version']} (run {s['run_id']}), alias challenger")
            typer.echo(f"  {'metric':<40}{'model':>10}{'baseline':>10}{'lgbm plain':>12}")
            plain = s.get("baseline_lgbm_default", {})

            def cell(v, width: int) -> str:
                return " " * width if v is None else f"{v:>{width}.4f}"

            for k, v in s["metrics"].items():
                typer.echo(f"  {k:<40}{v:>10.4f}{cell(s['baseline'].get(k), 10)}{cell(plain.get(k), 12)}")
            typer.echo(f"  baseline: {s['baseline_description']}; lgbm plain: 300 trees, lr 0.03, 15 leaves")
            if "repeats" in s:
                r = s["repeats"]
                typer.echo(f"  over {r['n']} split seeds {r['seeds']}: mean ± sd [min, max]")
                for k, st in r["model"].items():
                    row = [st] + [r[who].get(k) for who in ("baseline", "baseline_lgbm_default")]
                    text = "".join(
                        "" if x is None else f"  {x['mean']:.4f}±{x['sd']:.4f} [{x['min']:.4f}, {x['max']:.4f}]"
                        for x in row
                    )
                    typer.echo(f"  {k:<40}{text}")
            elif "uncertainty" in s:
                u = s["uncertainty"]
                for who in ("model", "baseline", "baseline_lgbm_default"):
                    if who in u:
                        typer.echo(
                            f"  {u['metric']} 95% bootstrap interval, {who}: [{u[who]['low']:.4f}, {u[who]['high']:.4f}]"
                        )
            for note in s.get("notes", []):
                typer.echo(f"  note: {note}")

        run(action, as_json=as_json, debug=debug, human=human)
