"""The clientlens HTTP service (BentoML): the champion of every task (`core.tasks`) behind one API.

Endpoints (DESIGN §7):
- `POST /score`      `{"customers": [{"customer_id": 1, <feature>: value, ...}], "explain": false}`,
                     validated by the pydantic request model generated from the feature registry
                     (`serving.schemas`);
- `POST /score_ids`  `{"customer_ids": [1, 2]}`, scored from the materialised feature table
                     (`serving.feature_table`; 503 while there is no readable one);
- `POST /score_arrow` the features as one Arrow IPC stream, validated buffer by buffer and then
                     column-wise (`serving.arrow_io`, `features.requests`); answers an Arrow stream
                     or the JSON of `/score`;
- `GET  /models`     names, versions, aliases, training date and headline metrics;
- `GET  /livez`, `/readyz` (champions loaded and the feature table, if present, readable),
  `/metrics` (Prometheus; unrouted paths share one label), `/` (the API explorer, no third-party
  scripts: `serving.observability`).

Every invalid request is a 400 naming each field and reason (query parameters too), logged at
INFO without a traceback; 401 without the API key when one is set.

A valid `/score` body is decoded by msgspec straight to columns (`serving.fast_json`,
`FastScoreMiddleware`); any other body goes to the pydantic model, which names what is wrong.
Scoring calls `training.scoring.score_columns` (the core of `score_frame`, which `clientlens
score` uses) on the request's column arrays, with the `TabularModel` cores of an immutable
`ModelSet`. A background thread checks the MLflow `champion` aliases every `reload_seconds`
(0 = never), imports a newly promoted version into the BentoML store, loads it and swaps the set
(one reference assignment), so in-flight requests finish on the models they started with.
Requests of up to `INLINE_MAX_CUSTOMERS` are scored on the event loop; bigger batches on one
worker thread, so they never hold up health checks or small requests.

With several workers, each new connection goes to the worker with the fewest open
(`serving.accept`): BentoML's workers share one listening socket, and the first one awake used
to accept every waiting connection.

Every scored customer is appended to the inference log (`serving.inference_log`), which is
written by a background thread: the durability guarantee and its bound are stated there.

Settings: `core.settings.Settings`, read once when this module is imported in a worker
(`SETTINGS`) and passed down: `api_key`, `max_batch`, `workers`, `reload_seconds`,
`features_table`, `inference_log`, `log_flush_seconds`, `log_flush_rows`, the stores.

Run: `clientlens serve` or `bentoml serve serving.service:Clientlens`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hmac
import json
import logging
import threading
import time
import uuid
from itertools import chain, repeat
from typing import Any

import anyio
import bentoml
import numpy as np
import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic_core import to_json
from starlette.responses import JSONResponse, Response

from core.settings import Settings
from features.registry import FEATURES
from serving import accept, arrow_io, models_store, observability
from serving.alerts_api import AlertsRequest, AlertsResponse, alerts_for
from serving.fast_json import FastRequests
from serving.feature_table import FeatureTable
from serving.inference_log import InferenceLogWriter
from serving.schemas import (
    ModelsResponse,
    ModelVersions,
    ScoreIdsResponse,
    ScoreResponse,
    customer_model,
    customers_to_columns,
    score_ids_request_model,
    score_request_model,
    summarise_errors,
)

logger = logging.getLogger(__name__)

# The one read of the settings in the service: BentoML needs the worker count and the request
# models (whose batch limit is documented in the OpenAPI schema) when the class is defined.
# Every worker is a fresh process importing this module, so this is also "read once at start";
# everything below receives `SETTINGS` explicitly.
SETTINGS = Settings()

Customer = customer_model(FEATURES)
ScoreRequest = score_request_model(Customer, SETTINGS.max_batch)
ScoreIdsRequest = score_ids_request_model(SETTINGS.max_batch)

FEATURE_NAMES = [f.name for f in FEATURES]
FAST_REQUESTS = FastRequests(FEATURES, SETTINGS.max_batch)


# -- POST /actions: one customer's ranked actions (issue #13) ------------------------------------
class RankedAction(BaseModel):
    action: str = Field(description="The action's name in the service policy's catalogue.")
    channel: str = Field(description="The channel the action uses.")
    priority: float = Field(description="propensity x value x lever (expected annual value, weighted).")
    reason: str = Field(description="Which prediction, which value and which rule put the action here.")


ActionsRequest = create_model(
    "ActionsRequest",
    __config__=ConfigDict(extra="forbid", title="ActionsRequest"),
    customer=(Customer, Field(description="The customer's features (as one item of POST /score).")),
    top_k=(int, Field(3, ge=1, le=10, description="Most actions returned (at most the policy's top_k).")),
)


class ActionsResponse(BaseModel):
    request_id: str
    versions: ModelVersions
    customer_id: int
    service_class: str | None = Field(description="The class the policy served (the current asset tier).")
    next_action: str = Field(description="The first of `actions`.")
    actions: list[RankedAction] = Field(description="Eligible, suitable actions, best first, each with its reason.")


INLINE_MAX_CUSTOMERS = 64  # up to this many customers a request is scored on the event loop
INLINE_MAX_BYTES = 256 * 1024  # `POST /score` bodies up to this size are decoded on the event loop
OPEN_PATHS = frozenset({"/", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json"})
RAW_BODY_PATHS = frozenset({"/score_arrow"})  # bodies that are not JSON: keep their Content-Type
# Every path the service routes (metrics label anything else `observability.OTHER_PATH`).
KNOWN_PATHS = OPEN_PATHS | RAW_BODY_PATHS | {"/score", "/score_ids", "/actions", "/alerts", "/models"}


class ApiKeyMiddleware:
    """Require the API key (`Settings.api_key`) on every path but health, metrics and docs.

    Accepted as `Authorization: Bearer <key>` or `X-API-Key: <key>`; compared in constant time.
    Without a key the middleware lets everything through.
    """

    def __init__(self, app, api_key: str = "") -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None

    def _authorised(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self.key is None:
            return True
        for name, value in headers:
            if name == b"x-api-key" and hmac.compare_digest(value.strip(), self.key):
                return True
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
                    return True
        return False

    async def __call__(self, scope, receive, send) -> None:
        if (
            self.key is None
            or scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope["path"].startswith("/static_content/")
            or self._authorised(scope.get("headers", []))
        ):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _where(loc: list | tuple) -> str:
    """`("customers", 3, "age")` -> `customers[3].age`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def explain_validation_errors(payload: dict[str, Any]) -> dict[str, Any]:
    """BentoML's 400 body (`detail` = pydantic errors) as `{"error": "<field>: <reason>; ...", "errors": [...]}`.

    The message names each field and reason; `errors` lists them as `{field, reason, type}`
    (documented in the served OpenAPI schema, see `complete_openapi`).
    """
    detail = payload.get("detail")
    if isinstance(detail, str) and "error" not in payload:  # FastAPI's own 400s, e.g. a body it cannot parse
        return {"error": f"invalid request: {detail}"}
    if not isinstance(detail, list):
        return payload
    errors = [
        {"field": _where(e.get("loc", ())), "reason": e.get("msg", ""), "type": e.get("type", "")}
        for e in detail
        if isinstance(e, dict)
    ]
    return {"error": summarise_errors(errors), "errors": errors}


class ErrorFormatMiddleware:
    """Bodies of POST requests are JSON whatever their Content-Type says (so a form or pickle
    body is a 400 "invalid JSON", never a parser crash), and BentoML's 4xx errors are rewritten
    into messages that name each field and reason."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if scope["path"] not in RAW_BODY_PATHS:
            headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                start = message
                return
            if start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                try:
                    payload = json.loads(body)
                    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
                        payload = payload[0]  # BentoML wraps other 4xx errors in a list
                    body = json.dumps(explain_validation_errors(payload)).encode()
                except (ValueError, TypeError):
                    pass
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, capture)


class FastScoreMiddleware:
    """`POST /score` without BentoML's pydantic round trip when the body is valid.

    The body is decoded by `serving.fast_json` (msgspec, straight to columns, the same rules as
    the request model) and scored by the service instance; a body it does not accept is handed
    on untouched to the BentoML endpoint, whose pydantic model answers exactly as before (a 400
    naming every field and reason, or the rare valid body the fast path declines). Installed
    inside the API-key check; the service instance registers itself at start (`SERVICE`)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        service = SERVICE[0] if SERVICE else None
        if service is None or scope["type"] != "http" or scope.get("method") != "POST" or scope["path"] != "/score":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if len(body) <= INLINE_MAX_BYTES:
            decoded = FAST_REQUESTS.decode(body)
            response = (
                None if decoded is None else await service._run(len(decoded.ids), service._score_decoded, decoded)
            )
        else:  # a big batch: decoded and scored off the event loop in one hand-off to the batch thread
            response = await service._run(INLINE_MAX_CUSTOMERS + 1, _decode_and_score, service, body)
        if response is None:
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await response(scope, receive, send)


def _decode_and_score(service, body: bytes) -> Response | None:
    """`FastScoreMiddleware`'s work on a big body, in one thread hand-off (each one can wait a whole
    scheduler slice on a busy machine); None when the fast path does not accept the body."""
    decoded = FAST_REQUESTS.decode(body)
    return None if decoded is None else service._score_decoded(decoded)


SERVICE: list[Any] = []  # the worker's service instance, for `FastScoreMiddleware`


SERVICE_DESCRIPTION = (
    "Value tier, churn and latent risk appetite for bank customers, from the champion models in MLflow. "
    "`POST /score` takes features as JSON, `POST /score_ids` customer ids (from the materialised feature "
    "table), `POST /score_arrow` features as an Arrow IPC stream. Invalid input is a 400 naming each field "
    "and reason; with an API key set, send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
)
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What is wrong, naming each field and reason."}},
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "Summary naming each invalid field and the reason."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason", "type"],
                "properties": {
                    "field": {"type": "string", "examples": ["customers[3].region"]},
                    "reason": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def complete_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """What BentoML's generated schema leaves out: request bodies are required, 400 bodies list
    the invalid fields, and the API answers 401 (API key) and 503 (no champion/feature table)."""

    def response(description: str, schema: dict) -> dict:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    # BentoML's stock description links badges and chat rooms on other sites (which the root
    # page's Content-Security-Policy blocks anyway): describe this service instead.
    spec.setdefault("info", {})["description"] = SERVICE_DESCRIPTION
    spec["info"].pop("contact", None)
    for path, item in spec.get("paths", {}).items():
        for _method, op in item.items():
            if not isinstance(op, dict) or path in OPEN_PATHS:
                continue
            responses = op.setdefault("responses", {})
            if "requestBody" in op:
                op["requestBody"]["required"] = True
                responses["400"] = response(
                    "Invalid request: the fields and reasons are listed.", VALIDATION_ERROR_SCHEMA
                )
            responses.setdefault(
                "401", response("Missing or wrong API key (when CLIENTLENS_API_KEY is set).", ERROR_SCHEMA)
            )
            responses.setdefault("503", response("No champion models loaded yet, or no feature table.", ERROR_SCHEMA))
    return spec


class OpenAPIMiddleware:
    """Serve `/docs.json` completed by `complete_openapi`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/docs.json":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if start is not None and start["status"] == 200:
                with contextlib.suppress(ValueError):
                    body = json.dumps(complete_openapi(json.loads(body))).encode()
            start = start or {"type": "http.response.start", "status": 500, "headers": []}
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=503)


def _no_models() -> JSONResponse:
    return _unavailable("no champion models loaded yet: train and promote tier, churn and risk")


class Encoded(bytes):
    """JSON already encoded: `_json` puts these bytes in the body as they are."""


def _json(body: dict[str, Any]) -> Response:
    """A response body of plain Python values, serialised once by pydantic-core; a value that is
    `Encoded` (the results of `_results`) goes in as its bytes. The same bytes as `to_json(body)`
    of the decoded values: `to_json` writes compact JSON, keys in insertion order."""
    if not any(isinstance(v, Encoded) for v in body.values()):
        return Response(to_json(body), media_type="application/json")
    fields = (to_json(k) + b":" + (v if isinstance(v, Encoded) else to_json(v)) for k, v in body.items())
    return Response(b"{" + b",".join(fields) + b"}", media_type="application/json")


def _scalars(values: list) -> list[bytes]:
    """Each number, bool or None of `values` as `to_json` writes it (one call for the whole list:
    none of them contains a comma)."""
    return to_json(values)[1:-1].split(b",") if values else []


def _labels(values: list) -> list[bytes]:
    """Each string or None of `values` as `to_json` writes it, encoding each distinct value once
    (anything else one by one: 1, 1.0 and True are one key of a dict, three different JSON values)."""
    try:
        distinct = set(values)
    except TypeError:  # an unhashable value
        distinct = {0}
    if not all(v is None or type(v) is str for v in distinct):
        return [to_json(v) for v in values]
    encoded = {v: to_json(v) for v in distinct}
    return list(map(encoded.__getitem__, values))


def _results(ids: list[int], out: pd.DataFrame | dict[str, Any], explain: bool) -> Encoded:
    """`score_columns` (or `score_frame`) output as the JSON array of response items, built column by
    column: each column's values encoded in one pass, then the rows joined from byte pieces (no dict
    per customer, #18). The bytes `to_json` writes for the items as dicts of plain Python values
    (`tests/serving/test_results_json.py` compares them on every kind of column)."""
    from core import tasks as T  # column names of the task contract (imported here: cached, no work at import)

    tier_classes = T.TIER.classes_of(out)
    risk_classes = T.RISK.classes_of(out)

    def values(column: str) -> list:
        v = out[column]
        return v if isinstance(v, list) else v.tolist()

    def flags(column: str) -> list[bytes]:
        return [b"true" if v else b"false" for v in values(column)]

    def key(name: str) -> bytes:
        return to_json(name) + b":"

    upgrade = [None if v != v else v for v in values(T.UPGRADE_COLUMN)]  # NaN when the current tier is unknown
    gap = [None if v != v else int(v) for v in values(T.RISK_GAP_COLUMN)]  # NaN when either class is unknown

    def probabilities(task: Any, classes: list[str]) -> list[bytes | list[bytes]]:
        opened: list[bytes | list[bytes]] = [b',"probabilities":{']
        for i, c in enumerate(classes):
            opened += [(b"," if i else b"") + key(c), _scalars(values(task.score_column(c)))]
        return [*opened, b"}"]

    pieces: list[bytes | list[bytes]] = [
        b',{"customer_id":',
        _scalars(ids),
        b',"tier":{"label":',
        _labels(values("tier")),
    ]
    pieces += probabilities(T.TIER, tier_classes)
    pieces += [
        b',"upgrade_probability":', _scalars(upgrade),
        b'},"churn":{"probability":', _scalars(values("churn_proba")),
        b',"flag":', flags("churn"),
        b',"driver":', _labels(values(T.CHURN_DRIVER_COLUMN)),
        b'},"risk_appetite":{"label":', _labels(values("risk_appetite")),
    ]  # fmt: skip
    pieces += probabilities(T.RISK, risk_classes)
    pieces += [
        b',"hidden_aggressive":', flags(T.HIDDEN_AGGRESSIVE_COLUMN),
        b',"stated":', _labels(values(T.STATED_RISK_COLUMN)),
        b',"gap":', _scalars(gap),
        b'},"lifecycle_stage":', _labels(values(T.LIFECYCLE_COLUMN)),
        b',"relationship_depth":', _labels(values(T.DEPTH_COLUMN)),
        b',"segment":', _labels(values(T.SEGMENT_COLUMN)),
        b',"business_segment":', _labels(values(T.BUSINESS_SEGMENT_COLUMN)),
        b',"next_action":', _labels(values("next_action")),
    ]  # fmt: skip
    if explain:
        pieces.append(b',"reasons":{')
        for i, t in enumerate(t for t in T.TASK_NAMES if T.reasons_column(t) in out):
            pieces += [(b"," if i else b"") + key(t), list(map(to_json, values(T.reasons_column(t))))]
        pieces.append(b"}")
    pieces.append(b"}")
    streams = [repeat(p) if isinstance(p, bytes) else p for p in pieces]
    rows = b"".join(chain.from_iterable(zip(*streams)))  # ",{...},{...}"
    return Encoded(b"[" + rows[1:] + b"]")


fastapi_app = FastAPI(title="clientlens", docs_url=None, redoc_url=None, openapi_url=None)


async def _bad_query(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Invalid query parameters of the FastAPI routes: 400 with the fields and reasons, as every
    other invalid request (FastAPI's default is 422)."""
    errors = [{"field": _where(e.get("loc", ())), "reason": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]  # fmt: skip
    return JSONResponse({"error": summarise_errors(errors), "errors": errors}, status_code=400)


fastapi_app.add_exception_handler(RequestValidationError, _bad_query)  # type: ignore[arg-type]


def _settle_heap() -> None:
    """Move everything alive now (models, their lookup tables, libraries) out of the garbage collector's
    reach (`gc.freeze`): a 1,000-customer request allocates enough containers to trigger full collections,
    each of which walked the whole loaded heap (arbitration of a batch ran 2-3x slower in process, #18).
    Frozen objects are still freed by reference counting (a replaced model set goes); only a reference
    cycle among them would stay, once per champion swap."""
    gc.collect()
    gc.freeze()


def _balance_connections(workers: int) -> None:
    """In a server worker of several (this class is built on the loop uvicorn is about to listen
    on, before it does): one accept per wake-up, the worker with the fewest open connections
    first, so keep-alive clients spread over the workers instead of piling onto the first one
    awake (`serving.accept`)."""
    from bentoml._internal.context import server_context

    if workers < 2 or server_context.worker_index is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # built outside a server (tests, scripts)
        return
    accept.balance_accepts(loop, workers, server_context.worker_index)


# BentoML wraps every request in OpenTelemetry's ASGI middleware (spans for the request and for each
# body message sent or received), even with its default of no exporter and sample rate 0, when the
# spans go nowhere: ~0.3 ms of a single customer's /score and half of GET /livez (#18). Unless
# CLIENTLENS_TRACING asks for traces, its `excluded_urls` matches every URL. These are defaults: a
# `tracing.excluded_urls` in the BentoML configuration (BENTOML_CONFIG) still wins.
UNTRACED = {} if SETTINGS.tracing else {"tracing": {"excluded_urls": ["."]}}


@bentoml.service(
    name="clientlens",
    workers=SETTINGS.workers,
    traffic={"timeout": 120},
    http={"max_request_size": 200 * 1024 * 1024},
    **UNTRACED,
)
@bentoml.asgi_app(fastapi_app, path="/")
class Clientlens:
    """Value tier, churn and latent risk appetite for bank customers, from the champion models."""

    # Models are not class attributes (`BentoModel("clientlens-tier:latest")`): BentoML resolves
    # those before any hook runs, so the store would have to be filled by a separate process
    # first. Instead the deployment hook below fills it from MLflow once per server, workers load
    # from it, and `bentoml build` packs the store's models via `serving/bentofile.yaml`.

    @bentoml.on_deployment
    def import_champions() -> None:
        """Once per server, before workers start: copy the MLflow champions into the BentoML store."""
        try:
            tags = models_store.import_champions()
            logger.info("champions in the BentoML store: %s", tags)
            if models_store.serving_ready():
                logger.info("every champion compiled, with its explanation tables, in the cache the workers read")
            else:
                models_store.load_model_set()  # compiles each booster once, into the cache the workers read
        except Exception as exc:
            logger.warning("could not import champions from MLflow (%s); serving the BentoML store", exc)

    def __init__(self) -> None:
        self._models: models_store.ModelSet | None = None
        self._aliases: dict[tuple[str, str], list[str]] = {}  # (task, MLflow version) -> aliases
        self._reload_lock = threading.Lock()
        self._batch_limiter: anyio.CapacityLimiter | None = None
        self._stop = threading.Event()
        self.settings = settings = SETTINGS
        _balance_connections(settings.workers)
        observability.install(KNOWN_PATHS)
        self.log = InferenceLogWriter(
            root=settings.inference_log,
            flush_seconds=settings.log_flush_seconds,
            flush_rows=settings.log_flush_rows,
            observe=observability.inference_log_gauges(settings.log_flush_rows, settings.log_flush_seconds),
        ).start()
        self.features = FeatureTable(settings.features_table)
        self.reload_seconds = settings.reload_seconds
        self.refresh_models(initial=True)
        self._watcher = None
        if self.reload_seconds > 0:
            self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
            self._watcher.start()
        SERVICE[:] = [self]
        _settle_heap()

    # -- models ---------------------------------------------------------------------------------
    def refresh_models(self, *, initial: bool = False) -> bool:
        """Load champions that changed in MLflow; swap the model set atomically. True if swapped.

        When MLflow cannot be reached (e.g. a containerised Bento), the models already in the
        BentoML store are served.
        """
        with self._reload_lock:
            current = self._models
            try:
                info = models_store.champion_info()
                wanted = {t: (i or {}).get("version") for t, i in info.items()}
                self._aliases = {(t, i["version"]): i["aliases"] for t, i in info.items() if i}
            except Exception:
                logger.warning("cannot reach MLflow at startup/reload; serving the BentoML store", exc_info=True)
                wanted = None
            try:
                if wanted is None:
                    if current is None:
                        self._models = models_store.load_model_set()
                    return current is None
                have = current.versions if current is not None else {}
                changed = [t for t, v in wanted.items() if v is not None and v != have.get(t)]
                if current is None and any(v is None for v in wanted.values()):
                    missing = [t for t, v in wanted.items() if v is None]
                    if initial:
                        logger.warning("no champion yet for %s; not ready until one is promoted", missing)
                    return False
                if not changed:
                    return False
                loaded = {}
                for task in changed:
                    models_store.import_champion(task)
                    loaded[task] = models_store.load_task(task)
                    if loaded[task].version != wanted[task]:  # alias moved while importing: next round
                        logger.info("champion of %s moved during import; retrying later", task)
                new = current.replace(**loaded) if current is not None else models_store.ModelSet(loaded)
                self._models = new  # the swap: one reference assignment
                logger.info("serving versions %s", new.versions)
                _settle_heap()
                return True
            except Exception:
                logger.exception("reloading champions failed; still serving %s", current.versions if current else None)
                return False

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            self.refresh_models()

    def __is_ready__(self) -> bool:
        """Champions loaded, and the feature table (when its file exists) readable: a service that
        would answer `/score_ids` with 503 for a broken table does not report itself ready."""
        return self._models is not None and self.features.usable()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self._stop.set()
        self.log.close()

    # -- scoring --------------------------------------------------------------------------------
    def _predict(
        self, models: models_store.ModelSet, ids: np.ndarray, columns: dict[str, np.ndarray], explain: bool, top_k: int
    ) -> tuple[str, dict[str, Any]]:
        """Score through `training.scoring.score_columns` (the core of `score_frame`, the batch path)
        on the request's column arrays and log; returns the request id and the output columns."""
        from training.scoring import score_columns

        out = score_columns(columns, len(ids), models.cores, explain=top_k if explain else 0)
        request_id = uuid.uuid4().hex
        self.log.append_scored(
            ts=np.datetime64(time.time_ns(), "ns"),
            request_id=request_id,
            customer_ids=ids,
            features=columns,
            outputs={c: v for c, v in out.items() if not c.startswith("reasons_")},
            versions=models.versions,
        )
        return request_id, out

    def _score(
        self, models: models_store.ModelSet, ids: np.ndarray, columns: dict[str, np.ndarray], explain: bool, top_k: int
    ) -> tuple[str, Encoded]:
        """`_predict`, shaped as the JSON response items."""
        request_id, out = self._predict(models, ids, columns, explain, top_k)
        return request_id, _results(ids.tolist(), out, explain)

    async def _run(self, n: int, fn, *args):
        """Small requests run inline on the event loop: no thread hand-offs, which cost whole
        scheduler slices on a busy machine. Big batches go to one worker thread, so health checks
        and small requests are not stuck behind them."""
        if n <= INLINE_MAX_CUSTOMERS:
            return fn(*args)
        if self._batch_limiter is None:
            self._batch_limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._batch_limiter)

    def _score_customers(self, customers: list, explain: bool, top_k: int) -> Response:
        models = self._models
        if models is None:
            return _no_models()
        ids, columns = customers_to_columns(customers, FEATURES)
        request_id, results = self._score(models, ids, columns, explain, top_k)
        body = {"request_id": request_id, "versions": models.versions, "results": results}
        return _json(body)

    def _score_decoded(self, decoded) -> Response:
        """`_score_customers` for a body `serving.fast_json` decoded to columns."""
        models = self._models
        if models is None:
            return _no_models()
        request_id, results = self._score(models, decoded.ids, decoded.columns, decoded.explain, decoded.top_k)
        return _json({"request_id": request_id, "versions": models.versions, "results": results})

    def _score_ids(self, customer_ids: list[int], explain: bool, top_k: int) -> Response:
        models = self._models
        if models is None:
            return _no_models()
        snap = self.features.snapshot()
        if snap is None:
            # The body names no server path (the server log does): callers need not know the layout.
            return _unavailable(self.features.problem())
        wanted = np.asarray(customer_ids, dtype=np.int64)
        pos = snap.index.get_indexer(wanted)
        found = pos >= 0
        errors = [
            {"index": int(i), "customer_id": int(wanted[i]),
             "error": f"unknown customer_id (not in the feature table as of {snap.as_of})"}
            for i in np.flatnonzero(~found)
        ]  # fmt: skip
        results: Encoded | list = []
        request_id = uuid.uuid4().hex
        if found.any():
            rows = pos[found]
            columns = {}
            for name in FEATURE_NAMES:
                values = snap.frame[name].to_numpy()[rows]
                columns[name] = values.astype(np.float64) if values.dtype == bool else values
            request_id, results = self._score(models, wanted[found], columns, explain, top_k)
        body = {
            "request_id": request_id,
            "versions": models.versions,
            "as_of": snap.as_of,
            "results": results,
            "errors": errors,
        }
        return _json(body)

    @bentoml.api(route="/score", input_spec=ScoreRequest, output_spec=ScoreResponse)
    async def score(self, customers: list, explain: bool = False, top_k: int = 3) -> ScoreResponse:
        """Score customers from the features in the request (missing features are scored as missing)."""
        return await self._run(len(customers), self._score_customers, customers, explain, top_k)

    @bentoml.api(route="/score_ids", input_spec=ScoreIdsRequest, output_spec=ScoreIdsResponse)
    async def score_ids(self, customer_ids: list[int], explain: bool = False, top_k: int = 3) -> ScoreIdsResponse:
        """Score customers by id from the latest materialised feature table; unknown ids are per-item errors."""
        return await self._run(len(customer_ids), self._score_ids, customer_ids, explain, top_k)

    def _score_table(self, table, explain: bool, top_k: int, arrow_out: bool) -> Response:
        models = self._models
        if models is None:
            return _no_models()
        try:
            ids, columns = arrow_io.table_to_columns(table, FEATURES, self.settings.max_batch)
        except arrow_io.ArrowRequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        request_id, out = self._predict(models, ids, columns, explain, top_k)
        if arrow_out:
            stream = arrow_io.results_table(ids, out, request_id, models.versions)
            return Response(stream, media_type=arrow_io.ARROW_STREAM)
        body = {"request_id": request_id, "versions": models.versions, "results": _results(ids.tolist(), out, explain)}
        return _json(body)

    @fastapi_app.post(
        "/score_arrow",
        summary="Score a batch of customers sent as an Arrow table",
        response_class=Response,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "An Arrow IPC stream: a `customer_id` integer column and any feature columns "
                "(null = missing). Same rules as `/score`, per column.",
                "content": {arrow_io.ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
        responses={
            200: {
                "description": "Arrow stream (when `Accept` asks for it: one row per customer, the scoring "
                "columns, request id and versions in the schema metadata), else the JSON of `/score`.",
                "content": {
                    arrow_io.ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {
                        "schema": ScoreResponse.model_json_schema(ref_template="#/components/schemas/{model}")
                    },
                },
            },
            415: {
                "description": "The body is not sent as an Arrow IPC stream.",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            },
        },
    )
    async def score_arrow(
        self,
        request: Request,
        explain: bool = Query(False, description="Add the top reasons of each prediction."),
        top_k: int = Query(3, ge=1, le=20, description="Reasons per model."),
    ) -> Response:
        """Bulk scoring for batch callers: the features as Arrow columns (validated column by column)."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != arrow_io.ARROW_STREAM:
            return JSONResponse({"error": f"Content-Type must be {arrow_io.ARROW_STREAM} (an Arrow IPC stream)"},
                                status_code=415)  # fmt: skip
        try:
            table = arrow_io.read_table(await request.body())
        except arrow_io.ArrowRequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        arrow_out = arrow_io.ARROW_STREAM in request.headers.get("accept", "")
        return await self._run(table.num_rows, self._score_table, table, explain, top_k, arrow_out)

    def _actions(self, customer: Any, top_k: int) -> Response:
        """The same scoring (and log) as /score for one customer, answered as its ranked actions."""
        models = self._models
        if models is None:
            return _no_models()
        ids, columns = customers_to_columns([customer], FEATURES)
        request_id, out = self._predict(models, ids, columns, False, 0)
        ranked = json.loads(out["actions"][0])[:top_k]
        return _json(
            {
                "request_id": request_id,
                "versions": models.versions,
                "customer_id": int(ids[0]),
                "service_class": out["service_class"][0],
                "next_action": out["next_action"][0],
                "actions": ranked,
            }
        )

    @bentoml.api(route="/actions", input_spec=ActionsRequest, output_spec=ActionsResponse)
    async def actions(self, customer: Any, top_k: int = 3) -> Response:  # body: output_spec's ActionsResponse
        """One customer's ranked next-best actions with the reason of each (the service policy's arbitration)."""
        return self._actions(customer, top_k)

    @fastapi_app.post("/alerts", response_model=AlertsResponse, summary="Demand alerts from recent behaviour")
    def alerts(self, request: AlertsRequest) -> AlertsResponse | JSONResponse:
        """Need signals against each customer's own history in the body, routed to a specialist (#14)."""
        from core.errors import InputError

        try:
            return alerts_for(request)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @fastapi_app.get("/models", response_model=ModelsResponse, summary="Models being served")
    def models(self) -> ModelsResponse:
        """Names, MLflow versions, aliases, training date and headline metrics of the served models."""
        current = self._models
        if current is None:
            return ModelsResponse(models=[])
        return ModelsResponse(
            models=[m.info(self._aliases.get((t, m.version), ["champion"])) for t, m in current.models.items()]
        )


# (`add_asgi_middleware` is added by the `bentoml.service` decorator, which mypy cannot see.)
Clientlens.add_asgi_middleware(OpenAPIMiddleware)  # type: ignore[attr-defined]
Clientlens.add_asgi_middleware(ErrorFormatMiddleware)  # type: ignore[attr-defined]
Clientlens.add_asgi_middleware(ApiKeyMiddleware, api_key=SETTINGS.api_key)  # type: ignore[attr-defined]
Clientlens.add_asgi_middleware(observability.RootPageMiddleware)  # type: ignore[attr-defined]
Clientlens.add_asgi_middleware(FastScoreMiddleware)  # type: ignore[attr-defined]  # innermost: after the key check
