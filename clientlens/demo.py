"""The whole main job on embedded defaults, stage by stage, through the real CLI.

Each stage runs as `clientlens <command> --json` in a subprocess, exactly as a scheduler
would run it, so the demo exercises the command-line contract rather than a private path. The drift step's
process is started early (`prime_command`): it imports while the service runs, then runs its command line
through the same entry point (`clientlens.cli.main`).
The summary of every stage (the last stdout line, one JSON object) is kept and the paths
of every output are printed at the end.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import ClientlensError
from core.settings import Settings
from core.tasks import TASK_NAMES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    customers: int = 3_000
    months: int = 18
    seed: int = 42
    # The demo's tuning budget is work, not time (#18): with `--timeout 40` the machine's load decided how many
    # trials ran (2 of 8 at load 10), so the demo's models were not reproducible. Tier and churn: a fixed
    # number of trials of `cv_folds` folds (the specs' 5 folds are 5 fits per trial; 2 folds let churn pick a
    # 4-round model, test AUC 0.885); risk (two-leaf trees, 150 rounds) keeps its 8 trials at the spec's folds.
    trials: int = 4
    cv_folds: int = 3
    risk_trials: int = 8
    timeout: int = 1800  # a safety cap only; the trial budget ends every study well before it
    workers: int = 2
    source_systems: bool = False  # also simulate three source systems and unify them first (#19)


@dataclass
class DemoRun:
    settings: Settings
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # user + system of the stage's process tree
    primed: dict[str, subprocess.Popen] = field(default_factory=dict)  # stage name -> `prime_command` process


def run_command(args: list[str], primed: subprocess.Popen | None = None) -> tuple[int, str, str, float]:
    """Run `args`; (exit status, stdout, stderr, CPU seconds of the process and the children it waited for).
    The CPU time comes from `os.wait4`, so a stage's cost is known even while other stages run beside it.
    `primed`: a `prime_command` process still waiting for its arguments (sent as JSON on its stdin): it runs
    `args` (a `clientlens` command line, without `python -m clientlens`) instead of a new process."""
    import os
    import threading

    if primed is not None:
        proc = primed
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(args) + "\n")
        proc.stdin.close()
    else:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    streams: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda key=key, f=f: streams.__setitem__(key, f.read()))
        for key, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, streams["out"], streams["err"], usage.ru_utime + usage.ru_stime


def run_stage(name: str, args: list[str], run: DemoRun, say: Callable[[str], None]) -> dict[str, Any]:
    """Run `clientlens ARGS --json`; keep and return its summary, or fail naming the stage."""
    say(f"[{name}] clientlens {' '.join(args)}")
    started = time.perf_counter()
    primed = run.primed.pop(name, None)
    if primed is not None and primed.poll() is None:
        code, stdout, stderr, cpu = run_command([*args, "--json"], primed=primed)
    else:  # not primed, or its process has ended (an import failed): a process of its own
        if primed is not None:
            primed.communicate()
        code, stdout, stderr, cpu = run_command([sys.executable, "-m", "clientlens", *args, "--json"])
    run.seconds[name], run.cpu_seconds[name] = time.perf_counter() - started, cpu
    lines = stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if code != 0:
        reason = summary.get("error") or (stderr.strip().splitlines() or ["no output"])[-1]
        raise ClientlensError(f"demo stage '{name}' failed (exit {code}): {reason}")
    run.summaries[name] = summary
    return summary


# What `clientlens drift --task T` imports (the CLI imports itself first): the statistics, MLflow's client, the
# inference log's reader and the Evidently modules of `monitoring.drift._EVIDENTLY_MODULES` (the renderer it
# forks then finds them imported). No store is opened and nothing is read before the command line arrives.
DRIFT_IMPORTS = [
    "monitoring.drift",
    "monitoring.sources",
    "monitoring.workspace",
    "serving.inference_log",
    "training.registry",
    "mlflow.tracking",
    "mlflow.exceptions",
    "evidently.presets",
    "evidently.metrics",
    "evidently.sdk.panels",
    "evidently.ui.workspace",
]

# A `clientlens` process that imports `modules` (argv[1], JSON) and then waits for its command line (one JSON
# list on stdin) and runs it through the same entry point as `python -m clientlens ARGS` (`clientlens.cli.main`);
# stdin closed without a line: it exits, having run nothing.
_PRIMED = (
    "import importlib, json, sys; from clientlens.cli import main; "
    "[importlib.import_module(m) for m in json.loads(sys.argv[1])]; line = sys.stdin.readline(); "
    "line or sys.exit(0); sys.argv[1:] = json.loads(line); main()"
)


def prime_command(modules: list[str]) -> subprocess.Popen:
    """Start a `clientlens` process that imports `modules` now and runs its command line once `run_command`
    sends it: the imports of a stage whose arguments are not known yet, done while other stages run."""
    return subprocess.Popen(
        [sys.executable, "-c", _PRIMED, json.dumps(modules)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def release_primed(run: DemoRun) -> None:
    """End the primed processes no stage used (their stdin closed: they exit without running anything)."""
    for proc in run.primed.values():
        proc.communicate()  # closes its stdin, reads its output until it exits
    run.primed.clear()


Stage = tuple[str, list[str]]


def run_concurrently(
    lanes: list[list[Stage]],
    run: DemoRun,
    say: Callable[[str], None],
    after: Callable[[str], None] | None = None,
) -> list[list[dict[str, Any]]]:
    """Run each lane's stages in order, the lanes side by side (one thread each, every stage still its
    own `clientlens ... --json` process): independent stages of single-threaded work on a 2-core machine.
    `after(name)` runs in the lane once stage `name` succeeded (e.g. to start background work on its output).
    Returns the summaries lane by lane; the first failure is raised once every lane has stopped."""
    from concurrent.futures import ThreadPoolExecutor

    def lane(stages: list[Stage]) -> list[dict[str, Any]]:
        out = []
        for name, args in stages:
            out.append(run_stage(name, args, run, say))
            if after is not None:
                after(name)
        return out

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        futures = [pool.submit(lane, stages) for stages in lanes]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def tuning_budget(cfg: DemoConfig, task: str) -> list[str]:
    """`clientlens train` options of the demo's budget for `task` (recorded in MLflow: tuning_cv_folds)."""
    if task == "risk":
        return ["--trials", str(max(cfg.trials, cfg.risk_trials))]
    return ["--trials", str(cfg.trials), "--cv-folds", str(cfg.cv_folds)]


def run_demo(cfg: DemoConfig, say: Callable[[str], None], settings: Settings | None = None) -> DemoRun:
    """The whole job under `settings.home_dir`. The feature tables go where the service and
    `/score_ids` look for them (`settings.features`), so `clientlens serve` after the demo scores by id."""
    settings = settings or Settings()
    demo = settings.home_dir / "demo"
    raw, feats = demo / "raw", settings.features
    run = DemoRun(settings=settings)
    sources = ["--source-systems"] if cfg.source_systems else []
    run_stage("simulate", ["simulate", "--customers", str(cfg.customers), "--months", str(cfg.months),
                           "--seed", str(cfg.seed), "--out", str(raw), *sources], run, say)  # fmt: skip
    if cfg.source_systems:
        u = run_stage("unify", ["unify", "--sources", str(raw / "sources"), "--raw", str(raw),
                                "--out", str(demo / "unified")], run, say)  # fmt: skip
        say(f"         {sum(u['records'].values()):,} source records -> {u['customers']:,} customers; linkage F1 "
            f"{u.get('f1', float('nan')):.3f} (naive exact name + birth date {u.get('naive_f1', float('nan')):.3f}); "
            f"report {u['report']}")  # fmt: skip
    # The MLflow store's schema is created by a side process while the raw tables are checked, so the three
    # trainings can start on it side by side. The features are built beside the check (`features` reads the raw
    # tables through the same contract, so an invalid table fails both; the check's error is the one raised).
    store = create_store(settings)
    ((_,), (panel,)) = run_concurrently(
        [[("validate", ["validate", "--raw", str(raw)])],
         [("features", ["features", "--raw", str(raw), "--out", str(feats), "--workers", str(cfg.workers)])]],
        run,
        say,
    )  # fmt: skip
    if store.wait() != 0:
        raise ClientlensError(f"demo: could not create the MLflow store at {settings.tracking_uri}")
    say(
        f"         panel: {panel.get('rows')} rows x {panel.get('columns')} columns over {len(panel.get('as_of', []))} as-of dates"
    )
    train = {
        task: (f"train {task}", ["train", task, "--features", str(feats), *tuning_budget(cfg, task),
                                 "--timeout", str(cfg.timeout), "--seed", str(cfg.seed),
                                 *(["--truth", str(raw / "truth.parquet")] if task in ("risk", "churn") else [])])
        for task in TASK_NAMES
    }  # fmt: skip
    # LightGBM trains on one thread per process (`Settings.lgbm_threads`), so the three tasks share the two
    # cores in two lanes of about the same length (#18: quiet, tier 78 s against risk 27 + churn 37 s): tier
    # alone, risk then churn; each promoted as soon as its lane has trained it. Each new model compiles
    # (`serving.compiled`) from the end of its training, on the core the other lane leaves idle; risk (0.3
    # CPU-s, not worth its own process's imports) goes with churn. The service then finds every object in its
    # content-addressed cache.
    compiler = Compiler(run, defer=("risk",))
    promote = {t: (f"promote {t}", ["promote", t]) for t in TASK_NAMES}
    longest = "tier" if "tier" in TASK_NAMES else TASK_NAMES[0]
    others = sorted((t for t in TASK_NAMES if t != longest), key=lambda t: t != "risk")
    lanes = [[train[longest], promote[longest]], [*(train[t] for t in others), *(promote[t] for t in others[::-1])]]
    run_concurrently(lanes, run, say, after=compiler.after)
    for task in TASK_NAMES:
        s = run.summaries[f"train {task}"]
        say(f"         {s['model']} v{s['version']}: " + _versus(task, s["metrics"], s["baseline"]))
    for task in TASK_NAMES:
        s = run.summaries[f"promote {task}"]
        say(f"         {task} champion v{s.get('champion')}: {s.get('reason')}")
    scores = demo / "scores.parquet"
    as_of = [str(d)[:10] for d in panel.get("as_of", [])]
    earlier = as_of[-4] if len(as_of) >= 4 else as_of[0]  # a quarter before the latest as-of
    # The book is scored and the quarter reclassified with the champions while the last model compiles and
    # the service runs (neither reads the inference log); the drift runs need the service's log. The service
    # starts once the compiler is done. Started before it (tried 2026-12-02) the service can find the churn
    # object and its explanation tables not yet cached and build them a second time; on a quiet machine the
    # two orders gave the same demo (3 min 14 s early vs 3 min 17 s after the wait; serve 54.9 s vs 17.1 + 20.4).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        batch = pool.submit(
            run_concurrently,
            [[("score", ["score", "--features", str(feats / "latest.parquet"), "--out", str(scores)]),
              ("reclassify", ["reclassify", "--features", str(feats), "--from", earlier, "--to", as_of[-1],
                              "--truth", str(raw / "truth.parquet"), "--out", str(demo / "reclassify")])]],
            run,
            say,
        )  # fmt: skip
        started = time.perf_counter()
        compiler.wait()
        run.seconds["wait for compiled models"] = time.perf_counter() - started
        # The drift step's process imports what it needs (the CLI, MLflow's client, Evidently: about half of
        # its CPU) while the service runs, and runs `clientlens drift ...` once the split time is known.
        run.primed["drift"] = prime_command(DRIFT_IMPORTS)
        try:
            boundary = call_service(run, feats, earlier, say)
            ((_, r),) = batch.result()
        except BaseException:
            release_primed(run)
            raise
    for line in book_summary(scores):
        say("         " + line)
    # Two drift windows split at the boundary, so the Evidently UI shows each panel over time (in order: one
    # workspace), in one process (the imports and the champion once); the alerts read neither, so they run beside.
    # The drift step runs in its primed process (the same command line and entry point, its imports done).
    since = (pd.Timestamp(as_of[-1]) - pd.Timedelta(days=30)).date().isoformat()
    try:
        ((drift,), (a,)) = run_concurrently(
            [
                [("drift", ["drift", "--task", "churn", "--split-at", boundary])],
                [("alerts", ["alerts", "--raw", str(raw), "--since", since, "--out", str(demo / "alerts.parquet")])],
            ],
            run,
            say,
        )  # fmt: skip
    finally:
        release_primed(run)
    for d in drift["windows"]:
        say(f"         drift status: {d.get('status')} (share drifted {d.get('share_drifted'):.3f})")
    say(f"         drift over time: uv run evidently ui --workspace {settings.home_dir / 'evidently_workspace'}")
    say(f"         {r['customers']:,} customers, {r['movers']:,} moved between {r['from']} and {r['to']}: "
        + ", ".join(f"{dim} {n:,}" for dim, n in r["moved"].items()))  # fmt: skip
    truth = r.get("truth") or {}
    say(f"         potential aggressive (rated conservative, behaving aggressively): {r['potential_aggressive']}"
        + (f"; {truth['truly_latent_aggressive']} truly latent-aggressive ({truth['share']:.1%} vs "
           f"{truth['base_rate_among_conservative_rated']:.1%} of all rated conservative, lift {truth['lift']})"
           if truth else ""))  # fmt: skip
    say(f"         {a['alerts']:,} demand alerts for {a['customers_alerted']:,} customers since {since}: "
        + ", ".join(f"{k} {v}" for k, v in a["by_signal"].items()))  # fmt: skip
    for alert in a["top"][:5]:
        say(
            f"           {alert['date'][:10]} customer {alert['customer_id']}: {alert['signal']} -> {alert['specialist']} ({alert['evidence']})"
        )
    return run


# Compile the given model versions' boosters into the service's content-addressed cache
# (`serving.compiled`) and store their explanation tables beside them (`serving.models_store`), exactly as a
# service worker would on start (the key is the model's content, so
# a version compiled before it is promoted is found once it is the champion), with the version's ready record
# (`models_store.prepare_version`: the server's parent then skips loading them); a failure only means the
# service compiles (or falls back to the booster) itself, so its exit status is not checked.
_WARM = (
    "import json, sys; from core.settings import Settings; from training.registry import load_model; "
    "from serving.models_store import prepare_version; s = Settings(); "
    "models = [load_model(t, v) for t, v in json.loads(sys.argv[1]).items()]; "
    "[prepare_version(c, i['name'], i['version'], i['run_id'], s) for c, i in models]"
)


class Compiler:
    """Compile each trained model as soon as its training stage ends (`after`, from the lane threads):
    a `defer`red model (small) waits and goes with the next one trained, so it does not pay for its own
    process's imports; `wait()` for all."""

    def __init__(
        self,
        run: DemoRun,
        start: Callable[[Settings, dict[str, str]], Any] | None = None,
        defer: tuple[str, ...] = (),
    ):
        import threading

        self.run = run
        self.start = start or warm_compiled_models
        self.defer = defer
        self.pending: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.lock = threading.Lock()

    def trained(self, task: str) -> None:
        with self.lock:
            self.pending.append(task)

    def after(self, stage: str) -> None:
        task = stage.removeprefix("train ")
        if stage == task or task not in TASK_NAMES:
            return  # not a training stage
        with self.lock:
            if task in self.defer:
                self.pending.append(task)
                return
            tasks, self.pending = [*self.pending, task], []
            versions = {t: str(self.run.summaries[f"train {t}"]["version"]) for t in tasks}
            self.processes.append(self.start(self.run.settings, versions))

    def wait(self) -> None:
        with self.lock:
            if self.pending:  # no training stage came after the first one
                versions = {t: str(self.run.summaries[f"train {t}"]["version"]) for t in self.pending}
                self.processes.append(self.start(self.run.settings, versions))
                self.pending = []
        for process in self.processes:
            process.wait()


def create_store(settings: Settings) -> subprocess.Popen:
    """Start creating the MLflow tracking and registry schema (a no-op on an existing store): two trainings
    that started on a store that does not exist yet would both create its tables."""
    from serving.process import service_env

    return subprocess.Popen(
        [sys.executable, "-c", _STORE],
        env=service_env(settings.process_env()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


_STORE = (
    "from training.registry import client; c = client(); "
    "c.search_experiments(max_results=1); c.search_registered_models(max_results=1)"
)


def warm_compiled_models(settings: Settings, versions: dict[str, str]) -> subprocess.Popen:
    """Start compiling `{task: version}` in the background. First-time compilation was ~30 s of the
    demo's service start; done while the models are promoted and the book is scored, the service finds
    the objects cached."""
    from serving.process import service_env

    return subprocess.Popen(
        [sys.executable, "-c", _WARM, json.dumps(versions)],
        env=service_env(settings.process_env()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def book_summary(scores_path: Path) -> list[str]:
    """What a bank reads first about its classified book: the classes on every dimension, the
    questionnaire against the revealed risk class, and the next-action mix by service class."""
    from training.policy_plot import action_mix
    from training.scoring import classification_summary

    scores = pd.read_parquet(scores_path)
    lines = classification_summary(scores).splitlines()
    mix = action_mix(scores)
    for cls in mix.columns:
        top = mix[cls].sort_values(ascending=False).head(3)
        lines.append(f"next actions, {cls}: " + ", ".join(f"{a} {share:.0%}" for a, share in top.items() if share > 0))
    return lines


# The numbers a person reads first for each task, beside the task baseline's on the same rows.
HEADLINES = {
    "tier": ("macro_f1", "upgrade_auc"),
    "churn": ("roc_auc", "churn_driver_accuracy"),
    "risk": ("hidden_aggressive_auc", "latent_risk_accuracy", "latent_risk_macro_f1"),
}


def _versus(task: str, metrics: dict[str, float], baseline: dict[str, float]) -> str:
    shown = [k for k in HEADLINES.get(task, ("roc_auc", "macro_f1")) if k in metrics]
    return ", ".join(f"{k} {metrics[k]:.3f} (baseline {baseline.get(k, float('nan')):.3f})" for k in shown)


def call_service(run: DemoRun, feats: Path, earlier: str, say: Callable[[str], None]) -> str:
    """Start the real BentoML service, call every endpoint, stop it. A batch caller first scores the
    book as it was at the `earlier` as-of (Arrow), then the campaign engine scores today's book by id;
    returns the UTC time between the two, which splits the inference log into two windows."""
    import httpx
    import pyarrow as pa

    from features.registry import FEATURES
    from serving.arrow_io import ARROW_STREAM, request_table, to_arrow_stream
    from serving.process import running_service

    latest = pd.read_parquet(feats / "latest.parquet")
    row = latest.drop(columns=["as_of"]).head(1)
    customer = json.loads(row.to_json(orient="records"))[0]
    ids = [int(i) for i in latest["customer_id"].head(2)] + [
        int(latest["customer_id"].max()) + 1
    ]  # the last is unknown
    say("[serve] bentoml serve serving.service:Clientlens (loopback, stopped after the calls)")
    started = time.perf_counter()
    log_path = run.settings.home_dir / "demo" / "serve.log"
    with (
        running_service(log_path=log_path, env=run.settings.process_env()) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        models = http.get("/models").raise_for_status().json()
        scored = http.post("/score", json={"customers": [customer], "explain": True}).raise_for_status().json()
        by_id = http.post("/score_ids", json={"customer_ids": ids}).raise_for_status().json()
        # A batch caller that has the features itself sends them as Arrow columns: the book a quarter ago.
        panel = pd.read_parquet(feats / "panel.parquet", filters=[("as_of", "==", pd.Timestamp(earlier))])
        before = panel[["customer_id", *[f.name for f in FEATURES if f.name in panel.columns]]]
        arrow_body = to_arrow_stream(request_table(before))
        t0 = time.perf_counter()
        arrow = http.post(
            "/score_arrow", content=arrow_body, headers={"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
        )
        arrow_ms = (time.perf_counter() - t0) * 1000
        arrow.raise_for_status()
        with pa.ipc.open_stream(arrow.content) as reader:
            arrow_rows = reader.read_all().num_rows
        # Every row of the earlier window is logged (stamped by the service) before its answer came back; the
        # boundary, to the microsecond, is after them and before any row of the later window.
        time.sleep(0.01)
        boundary = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")
        time.sleep(0.01)
        # A campaign engine scoring the whole book by id today, so the inference log holds a later window.
        book = [int(i) for i in latest["customer_id"]]
        for start in range(0, len(book), 1_000):
            http.post("/score_ids", json={"customer_ids": book[start : start + 1_000]}).raise_for_status()
    run.seconds["serve"] = time.perf_counter() - started
    run.summaries["serve"] = {"url": url, "log": str(log_path), "models": models, "score": scored, "score_ids": by_id,
                              "score_arrow": {"rows": arrow_rows, "ms": round(arrow_ms, 1)}}  # fmt: skip
    say(
        f"         GET /models, POST /score, POST /score_ids ({len(ids)} ids, the last unknown), then the whole book of {len(book)} customers by id"
    )
    say(
        f"         POST /score_arrow: {arrow_rows} customers as of {earlier} as an Arrow table, answered as Arrow in {arrow_ms:.0f} ms"
    )
    say("         POST /score response (one customer, explain=true):")
    say("         " + json.dumps(scored, indent=2, default=str).replace("\n", "\n         "))
    return boundary


def outputs(run: DemoRun) -> dict[str, Any]:
    """Where everything the demo made lives."""
    s = run.summaries
    return {
        "home": str(run.settings.home_dir),
        "raw": s["simulate"]["out"],
        "features": str(run.settings.features),
        "models": {t: f"{s[f'train {t}']['model']} v{s[f'train {t}']['version']}" for t in TASK_NAMES},
        "mlflow_ui": f"uv run mlflow ui --backend-store-uri {run.settings.tracking_uri}",
        "scores": s["score"].get("out"),
        "serve_log": s["serve"]["log"],
        "inference_log": str(run.settings.inference_log),
        "drift_report": s["drift"].get("report"),
        "drift_status": s["drift"].get("status"),
        "evidently_ui": f"uv run evidently ui --workspace {run.settings.home_dir / 'evidently_workspace'}",
        "reclassify_report": f"{s['reclassify'].get('out')}/report.html",
        "alerts": s["alerts"].get("out"),
        "seconds": {k: round(v, 1) for k, v in run.seconds.items()},
        "cpu_seconds": {k: round(v, 1) for k, v in run.cpu_seconds.items()},
    }
