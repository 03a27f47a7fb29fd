"""`clientlens demo` runs independent stages side by side (#18): every lane runs, in order, and a
failing stage still fails the demo, naming the stage."""

from __future__ import annotations

import pytest

from clientlens.demo import DemoRun, run_concurrently
from core.errors import ClientlensError
from core.settings import Settings


def test_lanes_all_run_and_the_first_failure_names_its_stage(tmp_path):
    run = DemoRun(settings=Settings(home=tmp_path))
    said: list[str] = []
    missing = str(tmp_path / "no-such-raw")
    with pytest.raises(ClientlensError, match=r"demo stage 'validate a' failed \(exit 2\)"):
        run_concurrently(
            [[("validate a", ["validate", "--raw", missing])], [("validate b", ["validate", "--raw", missing])]],
            run,
            said.append,
        )
    # both lanes ran to their end although the first failed
    assert set(run.seconds) == {"validate a", "validate b"}
    assert sorted(said) == sorted(f"[validate {x}] clientlens validate --raw {missing}" for x in "ab")


def test_each_model_compiles_once_its_training_ends_and_the_first_goes_with_the_next(tmp_path):
    """The demo's compile schedule (#18): `after` runs in the lane once a stage succeeded; the model trained
    alone first (risk) is compiled with the first of the side-by-side trainings to end, every later model on
    its own, each exactly once, with the version its training registered."""
    from clientlens.demo import Compiler

    run = DemoRun(settings=Settings(home=tmp_path))
    started: list[dict[str, str]] = []

    class Done:
        def wait(self) -> int:
            return 0

    compiler = Compiler(run, start=lambda settings, versions: started.append(versions) or Done())
    run.summaries.update({"train risk": {"version": 3}, "train churn": {"version": 5}, "train tier": {"version": 2}})
    compiler.trained("risk")
    assert started == []  # waits for the next training
    compiler.after("train churn")
    compiler.after("promote churn")  # not a training: nothing to compile
    compiler.after("train tier")
    compiler.wait()
    assert started == [{"risk": "3", "churn": "5"}, {"tier": "2"}]


def test_after_runs_in_each_lane_after_every_successful_stage(tmp_path):
    run = DemoRun(settings=Settings(home=tmp_path))
    seen: list[str] = []
    raw = str(tmp_path / "no-such-raw")
    lanes = [
        [("help a", ["validate", "--help"]), ("help b", ["validate", "--help"])],
        [("bad", ["validate", "--raw", raw]), ("never", ["validate", "--help"])],
    ]
    with pytest.raises(ClientlensError, match="'bad' failed"):
        run_concurrently(lanes, run, lambda line: None, after=seen.append)
    assert seen == ["help a", "help b"]  # the failed stage and the rest of its lane are not followed up


def test_a_deferred_model_compiles_with_the_next_one_trained_in_any_lane(tmp_path):
    """The demo's lanes (#18): risk trains first in the churn lane beside tier; its compile waits for the next
    training to end (churn, or tier if it ends first) and is never started alone while another is to come."""
    from clientlens.demo import Compiler

    run = DemoRun(settings=Settings(home=tmp_path))
    started: list[dict[str, str]] = []

    class Done:
        def wait(self) -> int:
            return 0

    run.summaries.update({"train risk": {"version": 1}, "train churn": {"version": 1}, "train tier": {"version": 4}})
    compiler = Compiler(run, start=lambda settings, versions: started.append(versions) or Done(), defer=("risk",))
    compiler.after("train risk")
    assert started == []
    compiler.after("train tier")
    compiler.after("train churn")
    compiler.wait()
    assert started == [{"risk": "1", "tier": "4"}, {"churn": "1"}]

    started.clear()
    alone = Compiler(run, start=lambda settings, versions: started.append(versions) or Done(), defer=("risk",))
    alone.after("train risk")
    alone.wait()  # nothing trained after it: wait() starts it
    assert started == [{"risk": "1"}]


def test_a_primed_stage_runs_its_command_line_as_its_own_process_would(tmp_path, monkeypatch):
    """The drift step's primed process (#18: imports done while the service runs) runs the command line it is
    sent through the CLI's entry point: the same summary, exit status and error as a new process; a primed
    process no stage used exits without running anything."""
    from clientlens.demo import prime_command, release_primed, run_stage

    monkeypatch.setenv("CLIENTLENS_HOME", str(tmp_path))
    missing = str(tmp_path / "no-such-raw")
    outcomes = {}
    for primed in (False, True):
        run = DemoRun(settings=Settings(home=tmp_path))
        if primed:
            run.primed["bad"] = prime_command(["monitoring.config"])
        with pytest.raises(ClientlensError) as error:
            run_stage("bad", ["validate", "--raw", missing], run, lambda line: None)
        assert run.primed == {}  # used
        outcomes[primed] = str(error.value)
    assert outcomes[True] == outcomes[False]
    assert "(exit 2)" in outcomes[True]
    run = DemoRun(settings=Settings(home=tmp_path))
    proc = run.primed["unused"] = prime_command([])
    release_primed(run)
    assert proc.returncode == 0 and run.primed == {}


def test_the_drift_step_is_primed_with_the_evidently_modules_its_renderer_imports():
    from clientlens.demo import DRIFT_IMPORTS
    from monitoring.drift import _EVIDENTLY_MODULES

    assert set(_EVIDENTLY_MODULES) <= set(DRIFT_IMPORTS)
