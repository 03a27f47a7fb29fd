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
