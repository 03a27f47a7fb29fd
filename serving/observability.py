"""What the service shows to operators and browsers, kept bounded and quiet.

- `install(known_paths)` (called once per worker, in the service's `__init__`):
  * a rejected request (400, 401, 404, 413 ...) is the caller's mistake, not a server fault:
    BentoML logs each one at ERROR with a full traceback; they are logged at INFO, one line,
    without it (real server errors keep their traceback at ERROR);
  * BentoML labels its Prometheus series with the raw request path, so every request to a new
    random path (answered 401 or 404) adds series for ever: a scanner grows `/metrics` and the
    worker without bound. Paths the service does not route are labelled `OTHER_PATH`; routing
    still sees the real path.
- `RootPageMiddleware`: BentoML's root page `/` loads Google Tag Manager in the visitor's
  browser. The service answers `/` with the same API explorer (its scripts are served locally
  under `/static_content/`) without the tag manager, and a Content-Security-Policy that lets the
  page load scripts from this server only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

OTHER_PATH = "/<other>"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
_TAG_MANAGER = re.compile(r"<!--\s*Google Tag Manager.*?<!--\s*End Google Tag Manager[^>]*-->", re.S)
_FALLBACK_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8"><title>clientlens</title></head>
<body><h1>clientlens</h1><p>API schema: <a href="./docs.json">docs.json</a>. Endpoints: POST /score, /score_ids,
/score_arrow; GET /models, /livez, /readyz, /metrics.</p></body></html>"""


class QuietRejections(logging.Filter):
    """BentoML's `log_exception` for a request rejected with a 4xx: INFO, one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_rejection(exc):
            record.msg = f"{record.getMessage()}: rejected ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _is_rejection(exc: BaseException) -> bool:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return True
    try:
        from bentoml.exceptions import BentoMLException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, BentoMLException) and 400 <= int(exc.error_code.value) < 500


def _bound_metric_labels(known_paths: Collection[str]) -> None:
    """Label BentoML's traffic metrics of unrouted paths `OTHER_PATH` (patched once per process:
    BentoML offers no hook for the label, and its middleware runs before any of the service's)."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as Metrics

    if getattr(Metrics, "_clientlens_bounded", False):
        return
    original = Metrics.__call__
    known = frozenset(known_paths)

    async def bounded(self, scope, receive, send):  # the same signature as the original
        if scope.get("type") == "http" and scope.get("path") not in known:
            if not getattr(self, "_clientlens_restores", False):
                inner = self.app

                async def restore(scope, receive, send):
                    if "clientlens.path" in scope:
                        scope = {**scope, "path": scope["clientlens.path"]}
                    await inner(scope, receive, send)

                self.app, self._clientlens_restores = restore, True
            scope = {**scope, "path": OTHER_PATH, "clientlens.path": scope["path"]}
        await original(self, scope, receive, send)

    Metrics.__call__ = bounded  # type: ignore[method-assign]
    setattr(Metrics, "_clientlens_bounded", True)  # noqa: B010 (an attribute BentoML does not declare)


def install(known_paths: Collection[str]) -> None:
    """Quiet 4xx logging and bounded metric labels in this worker process (idempotent)."""
    http_logger = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, QuietRejections) for f in http_logger.filters):
        http_logger.addFilter(QuietRejections())
    try:
        _bound_metric_labels(known_paths)
    except (ImportError, AttributeError) as exc:  # another BentoML layout: say so, keep serving
        logger.warning("cannot bound the metric labels of unknown paths (%s)", exc)


def inference_log_gauges(flush_rows: int, flush_seconds: float):
    """Prometheus gauges of the inference log's buffer (`serving.inference_log`, "Durability"):
    returns the `set` of the buffered-rows gauge, for `InferenceLogWriter(observe=...)`.
    Created in the worker, after BentoML has set up Prometheus' multiprocess directory."""
    from prometheus_client import Gauge

    buffered = Gauge(
        "clientlens_inference_log_buffered_rows",
        "Scored rows not yet on disk (lost if the worker is killed without shutdown).",
        multiprocess_mode="livesum",
    )
    Gauge("clientlens_inference_log_flush_rows", "Rows that trigger a write of the inference log.",
          multiprocess_mode="mostrecent").set(flush_rows)  # fmt: skip
    Gauge("clientlens_inference_log_flush_seconds", "Longest wait before buffered rows are written.",
          multiprocess_mode="mostrecent").set(flush_seconds)  # fmt: skip
    return buffered.set


@cache
def root_page() -> bytes:
    """BentoML's API explorer page without the tag manager (a plain page if it cannot be removed)."""
    try:
        import _bentoml_impl.server as impl

        html = (Path(impl.__file__).parent / "main-openapi.html").read_text(encoding="utf-8")
    except (ImportError, OSError):
        return _FALLBACK_PAGE.encode()
    html = _TAG_MANAGER.sub("", html)
    if "googletagmanager" in html:
        return _FALLBACK_PAGE.encode()
    return html.replace("BentoML Prediction Service", "clientlens").encode()


class RootPageMiddleware:
    """`GET /`: the API explorer without third-party scripts (see the module docstring)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body = root_page()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"content-security-policy", CSP.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope.get("method") == "GET" else b""})
