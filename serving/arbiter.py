"""`python -m serving.arbiter serve ...`: `bentoml serve` with one addition, a log line for every
worker that exits (issue #18, defect 10).

BentoML's arbiter (circus) reaps a dead worker and starts a new one without a word above DEBUG,
so a worker killed by a segfault, the OOM killer or `kill -9` left no trace in the server log.
This entry point runs in the arbiter process itself (`serving.process.serve_command`, used by
`clientlens serve`, `clientlens demo`, the tests and benchmarks) and wraps circus'
`Watcher.call_hook`: on the `after_reap` hook, which circus calls with the worker's pid and its
exit code (negative: the signal that killed it), it logs

    WARNING serving.arbiter: worker 12345 of 'service' died: killed by signal SIGKILL (9); restarting it

(INFO for the expected exits of a shutdown). The wrap uses circus internals and warns, instead of
failing, when a circus upgrade removes them.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

logger = logging.getLogger("serving.arbiter")


def describe_exit(exit_code: int | None) -> str:
    """`exit code 3`, `killed by signal SIGKILL (9)`, or `exit status unknown`."""
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {name} ({-exit_code})"
    return f"exit code {exit_code}"


def _log_reap(watcher: Any, kwargs: dict[str, Any]) -> None:
    # BentoML's logging set-up (`dictConfig`, after this module's import) disables loggers it
    # does not name: this one must speak anyway.
    logger.disabled = False
    exit_code = kwargs.get("exit_code")
    pid = kwargs.get("process_pid")
    name = getattr(watcher, "name", "?")
    stopping = bool(getattr(watcher, "is_stopping", lambda: False)()) or bool(
        getattr(watcher, "is_stopped", lambda: False)()
    )
    if stopping:
        logger.info("worker %s of %r exited (%s) while the server stops", pid, name, describe_exit(exit_code))
    else:
        logger.warning("worker %s of %r died: %s; restarting it", pid, name, describe_exit(exit_code))


def install() -> bool:
    """Wrap circus' `Watcher.call_hook` so every reaped worker is logged. False if circus changed."""
    try:
        from circus.watcher import Watcher
    except ImportError:  # pragma: no cover - circus is a BentoML dependency
        logger.warning("circus not importable: worker exits will not be logged")
        return False
    original = getattr(Watcher, "call_hook", None)
    if original is None:
        logger.warning("circus Watcher.call_hook is gone (circus upgrade?): worker exits will not be logged")
        return False
    if getattr(original, "_clientlens_logs_reaps", False):
        return True

    def call_hook(self, hook_name, **kwargs):
        if hook_name == "after_reap":
            try:
                _log_reap(self, kwargs)
            except Exception:  # the log line must never break the arbiter's restart of the worker
                logger.exception("could not log a reaped worker")
        return original(self, hook_name, **kwargs)

    call_hook._clientlens_logs_reaps = True  # type: ignore[attr-defined]
    Watcher.call_hook = call_hook
    _ensure_handler()
    return True


def _ensure_handler() -> None:
    """BentoML configures its own loggers only: give this one a stderr handler of the same shape."""
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main() -> None:
    install()
    from bentoml_cli.cli import cli

    cli()


if __name__ == "__main__":
    main()
