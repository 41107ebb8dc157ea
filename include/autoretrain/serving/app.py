"""The FastAPI app: predictions, feedback, health, model info, metrics and the routing admin API.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime, and
the request bodies are classes built per app (:func:`schemas.request_models`): a route annotates
``body`` with the static base class and :func:`_body_model` gives FastAPI the built one.
"""

import hmac
import inspect
import json
import logging
import math
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from time import perf_counter
from typing import Annotated, Any, TypedDict, TypeVar

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import autoretrain
from autoretrain import registry, tracking
from autoretrain.config import Settings, SettingsError
from autoretrain.db.engine import database_url, make_engine, redacted
from autoretrain.db.migrate import check_schema
from autoretrain.errors import TransientError
from autoretrain.serving import access, log_alerts, log_writer, prediction_log, schemas
from autoretrain.serving.fastlane import PredictFastLane
from autoretrain.serving.integrity import LastKnownGood, alert_refusal
from autoretrain.serving.manager import Loader, Lookup, ModelManager
from autoretrain.serving.routing import RoutingConfig, RoutingError, from_settings
from autoretrain.serving.service import Answer, NotReady, PredictionService, ShadowJob
from autoretrain.serving.spool import spool_dir
from autoretrain.serving.telemetry import BodyTooLarge, ServingMetrics, TelemetryMiddleware

log = logging.getLogger(__name__)

#: where /docs and /redoc load their Swagger UI and ReDoc assets from (this service, not a CDN)
DOCS_ASSETS = "/docs-assets"

Responses = dict[int | str, dict[str, Any]]  # FastAPI's ``responses=``: status -> OpenAPI response
_ERRORS: Responses = {401: {"model": schemas.ErrorResponse, "description": "missing or wrong bearer token"},
                      403: {"model": schemas.ErrorResponse, "description": "this role has no token configured: off"},
                      503: {"model": schemas.ErrorResponse, "description": "not ready"}}
_NOT_READY: Responses = {503: {"model": schemas.ErrorResponse, "description": "no model loaded yet (see /ready)"}}

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class _Guard(TypedDict):
    """The keyword arguments of a route behind the bearer token."""

    dependencies: list[Any]  # [Depends(<the role's token check>)]
    responses: Responses


def _body_model(model: type[Any]) -> Callable[[Endpoint], Endpoint]:
    """FastAPI validates the route's ``body`` with ``model`` (built for these settings) instead of its annotation.

    The annotation names the static base class, so the route body is type-checked; FastAPI reads the
    parameters through :func:`inspect.signature`, which returns ``__signature__`` when a function has one.
    """
    def use(route: Endpoint) -> Endpoint:
        signature = inspect.signature(route)
        parameters = [p.replace(annotation=model) if p.name == "body" else p for p in signature.parameters.values()]
        setattr(route, "__signature__", signature.replace(parameters=parameters))  # noqa: B010 - typeshed: no such attribute
        return route
    return use


def registry_access(settings: Settings, engine: sa.Engine,
                    keep: registry.Keep | None = None) -> tuple[Lookup, Loader]:
    """Alias lookup, and loading verified against AutoRetrain's record in ``engine`` (``keep``: each verified copy)."""
    client = tracking.client_for(settings)
    name = settings.model_name
    return (lambda alias: registry.alias_version(client, name, alias),
            lambda ref: registry.load_verified(client, name, ref.version, engine=engine, key=settings.integrity_key,
                                               keep=keep)[0])


def routing_source(engine: sa.Engine, settings: Settings) -> RoutingConfig:
    """The live override from the database, else the routing in the settings."""
    override = prediction_log.load_routing(engine)
    return RoutingConfig.from_dict(override) if override else from_settings(settings)


def check_settings(settings: Settings) -> None:
    """Refuse serving settings that cannot work, naming the setting and its allowed range."""
    from_settings(settings)  # routing_mode, canary_percent, ab_variants
    limits = {"reload_interval_seconds": (0.1, 86_400), "log_queue_size": (1, 10_000_000),
              "log_batch_size": (1, 100_000), "log_flush_seconds": (0.001, 3600), "max_batch_messages": (1, 10_000),
              "max_message_chars": (1, 1_000_000), "top_features": (0, 100), "serving_port": (0, 65_535),
              "drift_max_messages": (1, schemas.MAX_DRIFT_MESSAGES), "drift_max_concurrent": (1, 64),
              "log_spool_max_bytes": (1 << 20, 1 << 50), "log_stop_seconds": (0, 3600),
              "log_ready_backlog_rows": (1, 10_000_000)}
    for name, (low, high) in limits.items():
        value = getattr(settings, name)
        if not low <= value <= high:
            raise SettingsError(f"{name}={value!r} must be between {low} and {high} "
                                f"(AUTORETRAIN_{name.upper()} or autoretrain.json)")
    access.tokens_for(settings)  # WeakSecretError: a weak, example or shared token stops the start


def check_database(engine: sa.Engine) -> None:
    """Refuse to serve on a database that is not migrated to head (SchemaOutOfDate) or not reachable."""
    try:
        check_schema(engine)
    except sa.exc.SQLAlchemyError as err:
        raise TransientError(f"cannot reach the prediction-log database {redacted(engine.url)} "
                             f"(settings.database_url / AUTORETRAIN_DATABASE_URL): {err}") from err


def create_app(settings: Settings, *, lookup: Lookup | None = None, loader: Loader | None = None,
               engine: sa.Engine | None = None, fast_lane: bool = True) -> FastAPI:
    """The service for ``settings``; ``lookup``/``loader`` default to the MLflow registry.

    ``fast_lane=False`` serves ``POST /predict`` through FastAPI only (tests compare both lanes).
    """
    check_settings(settings)
    settings = access.with_routing_salt(settings)  # the secret salt the canary check hashes with too
    tokens = access.tokens_for(settings)
    access.warn_deprecated(settings)
    engine = engine or make_engine(database_url(settings))
    log_spool = spool_dir(settings.state_path, engine.url)
    writer = log_writer.PredictionLogWriter(engine, spool_dir=log_spool,
                                                queue_size=settings.log_queue_size,
                                                batch_size=settings.log_batch_size,
                                                flush_seconds=settings.log_flush_seconds,
                                                spool_max_bytes=settings.log_spool_max_bytes,
                                                backlog_rows=settings.log_ready_backlog_rows,
                                                on_alert=log_alerts.recorder(
                                                    engine.url.render_as_string(hide_password=False),
                                                    spool=str(log_spool),
                                                    cooldown_minutes=settings.alert_cooldown_minutes))
    metrics = ServingMetrics(writer.stats)
    last_good = None  # the last-known-good copy: only of what this service loaded from the registry itself
    if lookup is None or loader is None:
        last_good = LastKnownGood.for_settings(settings, engine)
        lookup, loader = registry_access(settings, engine, keep=last_good.stash)
    manager = ModelManager(lookup=lookup, loader=loader, routing=lambda: routing_source(engine, settings),
                           metrics=metrics, positive_label=settings.positive_label,
                           interval=settings.reload_interval_seconds, last_good=last_good,
                           on_refused=lambda alias, ref, err, serving: alert_refusal(
                               settings, engine, alias=alias, ref=ref, error=err, serving=serving))
    service = PredictionService(settings, manager=manager, writer=writer, metrics=metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None, None]:
        await run_in_threadpool(check_database, engine)  # SchemaOutOfDate: the service does not start
        writer.start()
        manager.start()
        try:
            yield
        finally:
            manager.stop()
            stats = await run_in_threadpool(writer.stop, settings.log_stop_seconds)
            engine.dispose()
            log.info("stopped: %d predictions logged, %d dropped, %d kept in the spool", stats.written,
                     stats.dropped, stats.depth)

    # /docs and /redoc with Swagger UI and ReDoc served from the package (fastapi-offline), not a CDN
    app = FastAPIOffline(title="AutoRetrain prediction service", version=autoretrain.__version__, lifespan=lifespan,
                         description=f"Classifies messages with `models:/{settings.model_name}@champion` "
                                     "(and the challenger in shadow, canary or A/B mode).",
                         static_url=DOCS_ASSETS)
    app.state.service, app.state.engine = service, engine
    _add_error_handlers(app)
    bodies = schemas.request_models(settings)
    _add_prediction_routes(app, bodies, service)
    _add_info_routes(app, service)
    _add_token_routes(app, settings, service, engine, tokens)
    _add_drift_route(app, settings, bodies, service, _token_check(tokens, access.ADMIN))
    if fast_lane:
        app.add_middleware(PredictFastLane, service=service, model=bodies.predict)
    max_body = settings.max_batch_messages * (settings.max_message_chars * 12 + 300) + 4096
    app.add_middleware(TelemetryMiddleware, metrics=metrics, max_body_bytes=max_body,
                       endpoints=[r.path for r in app.routes if hasattr(r, "path")])
    return app


def _json(payload: Any, status: int = 200, background: BackgroundTask | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                    media_type="application/json", background=background)


def _add_prediction_routes(app: FastAPI, bodies: schemas.RequestModels, service: PredictionService) -> None:
    PredictRequest, BatchRequest = bodies.predict, bodies.batch  # noqa: N806 - classes

    @app.post("/predict", response_model=schemas.PredictResponse, responses=_NOT_READY, tags=["predict"])
    @_body_model(PredictRequest)
    async def predict(body: schemas.MessageBase) -> Response:
        """Classify one message. With a `user_id`, the same user always gets the same variant."""
        try:
            answer, shadow = service.predict(body.message, body.user_id, started=perf_counter())
        except NotReady as err:
            raise HTTPException(503, f"not ready: {err}") from err
        return _json(answer, background=None if shadow is None else BackgroundTask(service.shadow, shadow))

    @app.post("/predict/batch", response_model=schemas.BatchPredictResponse, responses=_NOT_READY,
              tags=["predict"])
    @_body_model(BatchRequest)
    async def predict_batch(body: schemas.BatchBase) -> Response:
        """Classify up to `max_batch_messages` messages; each is routed on its own."""
        def score() -> tuple[list[Answer], list[ShadowJob]]:
            state = service.manager.state  # one state for the whole batch
            results = [service.predict(item.message, item.user_id, state=state) for item in body.items]
            return [a for a, _ in results], [s for _, s in results if s is not None]

        try:
            answers, shadows = await run_in_threadpool(score)
        except NotReady as err:
            raise HTTPException(503, f"not ready: {err}") from err
        task = BackgroundTask(service.run_shadows, shadows) if shadows else None
        return _json({"predictions": answers}, background=task)


def _add_info_routes(app: FastAPI, service: PredictionService) -> None:
    manager = service.manager

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Alive (the process answers); see /ready for "can predict"."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses=_NOT_READY)
    async def ready() -> dict[str, Any]:
        """200 once the champion is loaded, verified and warmed up; "degraded" while log rows wait in the spool.

        503 while prediction-log rows are being dropped (spool full or unwritable): this process
        answers but cannot record, so traffic should go elsewhere (docs/adr/0008-durable-prediction-log.md).
        """
        state = manager.state
        if state.champion is None:
            raise HTTPException(503, f"not ready: {service.not_ready_reason(state)}")
        health = service.writer.health()
        if health.status == "failing":
            raise HTTPException(503, "not ready: " + "; ".join(health.reasons))
        versions = {a: m.ref.version for a, m in state.models.items()}
        if health.reasons:  # rows wait in the spool: keep serving (they are safe), but say so
            return {"status": "degraded", "versions": versions, "reasons": list(health.reasons)}
        return {"status": "ready", "versions": versions}

    @app.get("/models/current", response_model=schemas.ModelsResponse, tags=["ops"])
    async def models_current() -> dict[str, Any]:
        """The versions being served per alias, their metrics and since when, and recent load failures."""
        return _models_payload(service)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _token_check(tokens: access.Tokens, role: str) -> Callable[..., None]:
    """A dependency that lets a request through only with ``role``'s bearer token (403 when it has none)."""
    token = tokens.of(role)
    setting = f"AUTORETRAIN_{role.upper()}_TOKEN"
    bearer = HTTPBearer(auto_error=False, scheme_name=f"{role}_token", description=f"The value of {setting}")

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if not token:
            raise HTTPException(403, f"the {role} endpoints are off: no {role} token is configured; set {setting} "
                                     f"(or {role}_token in autoretrain.json) and restart")
        if credentials is None:
            raise HTTPException(401, f"missing bearer token: send 'Authorization: Bearer <{setting}>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, f"wrong bearer token (this endpoint takes the {role} token)",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token


def _add_token_routes(app: FastAPI, settings: Settings, service: PredictionService, engine: sa.Engine,
                      tokens: access.Tokens) -> None:
    FeedbackRequest = schemas.request_models(settings).feedback  # noqa: N806 - a class
    feedback_guard = [Depends(_token_check(tokens, access.FEEDBACK))]
    guarded: _Guard = {"dependencies": [Depends(_token_check(tokens, access.ADMIN))], "responses": _ERRORS}

    @app.post("/feedback", response_model=schemas.FeedbackResponse, tags=["feedback"],
              dependencies=feedback_guard,
              responses={**_ERRORS, 404: {"model": schemas.ErrorResponse, "description": "unknown request_id"}})
    @_body_model(FeedbackRequest)
    def feedback(body: schemas.FeedbackBase) -> dict[str, Any]:
        """Record the true label of an earlier prediction (by its `request_id`)."""
        with _database("feedback"):
            known = prediction_log.prediction_exists(engine, body.request_id)
            if not known and service.writer.flush(timeout=2.0):  # it may still be in the log queue
                known = prediction_log.prediction_exists(engine, body.request_id)
            if not known:
                raise HTTPException(404, f"unknown request_id {body.request_id!r}: no prediction with this id "
                                         "is in the prediction log")
            at = datetime.now(UTC)
            prediction_log.save_feedback(engine, request_id=body.request_id, label=body.label, source=body.source,
                                         at=at)
        return {"request_id": body.request_id, "label": body.label, "source": body.source,
                "recorded_at": at.isoformat(timespec="milliseconds")}

    def routing_answer() -> dict[str, Any]:
        override = prediction_log.load_routing(engine)
        config = RoutingConfig.from_dict(override) if override else from_settings(settings)
        return {**config.as_dict(), "source": "override" if override else "settings"}

    @app.get("/admin/routing", response_model=schemas.RoutingResponse, tags=["admin"], **guarded)
    def get_routing() -> dict[str, Any]:
        """The routing in force for every process (override if set, else the settings)."""
        with _database("routing"):
            return routing_answer()

    @app.put("/admin/routing", response_model=schemas.RoutingResponse, tags=["admin"], **guarded)
    def put_routing(body: schemas.RoutingBody) -> dict[str, Any]:
        """Switch routing live: here at once, in every other process within `reload_interval_seconds`."""
        try:
            config = RoutingConfig.from_dict(body.model_dump(exclude_none=True))
        except RoutingError as err:
            raise HTTPException(422, str(err)) from err
        with _database("routing"):
            prediction_log.save_routing(engine, config.as_dict(), at=datetime.now(UTC))
            service.manager.refresh()
            return routing_answer()

    @app.delete("/admin/routing", response_model=schemas.RoutingResponse, tags=["admin"], **guarded)
    def delete_routing() -> dict[str, Any]:
        """Drop the override: back to the routing in the settings."""
        with _database("routing"):
            prediction_log.clear_routing(engine)
            service.manager.refresh()
            return routing_answer()

    @app.post("/admin/reload", response_model=schemas.ModelsResponse, tags=["admin"], **guarded)
    def reload() -> dict[str, Any]:
        """Poll the registry now instead of waiting for the next interval; refused versions are verified again."""
        service.manager.refresh(retry_refused=True)
        return _models_payload(service)


def _add_drift_route(app: FastAPI, settings: Settings, bodies: schemas.RequestModels,
                     service: PredictionService, guard: Callable[..., None]) -> None:
    """``POST /drift/calculate``: the monitoring checks on a posted batch, against the champion's reference.

    Behind the admin token, at most ``drift_max_messages`` per call (413) and ``drift_max_concurrent``
    calls at once in this process (429 with Retry-After): one call holds a core for seconds.
    """
    champions: dict[str, Any] = {}  # champion version -> monitoring.Champion (reference built once)
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(settings.drift_max_concurrent)
    last_seconds = [1.0]  # duration of the last call: the Retry-After of a refused one

    def champion_for(version: str) -> Any:
        from autoretrain import tracking
        from autoretrain.monitoring.windows import load_champion

        with lock:
            if version not in champions:
                champion = load_champion(settings, tracking.client_for(settings))
                champions.clear()
                champions[champion.ref.version] = champion
            return champions.get(version) or next(iter(champions.values()))

    @app.post("/drift/calculate", tags=["monitoring"], dependencies=[Depends(guard)],
              responses={**_ERRORS, 409: {"description": "the champion has no recorded training data"},
                         413: {"model": schemas.ErrorResponse, "description": "more than drift_max_messages"},
                         429: {"model": schemas.ErrorResponse, "description": "drift_max_concurrent calls running"}})
    @_body_model(bodies.drift)
    def drift_calculate(body: schemas.DriftBase) -> dict[str, Any]:
        """Drift of the posted messages against the champion's training reference (same JSON as monitoring)."""
        if len(body.messages) > settings.drift_max_messages:
            raise HTTPException(413, f"{len(body.messages):,} messages is more than drift_max_messages="
                                     f"{settings.drift_max_messages:,} per call; split the batch (or run the "
                                     "monitoring DAG on the window)")
        if not slots.acquire(blocking=False):
            wait = max(1, math.ceil(last_seconds[0]))
            raise HTTPException(429, f"{settings.drift_max_concurrent} drift calculation(s) already running "
                                     f"(drift_max_concurrent); retry in {wait} s", headers={"Retry-After": str(wait)})
        started = perf_counter()
        try:
            return calculate(body)
        finally:
            last_seconds[0] = perf_counter() - started
            slots.release()

    def calculate(body: schemas.DriftBase) -> dict[str, Any]:
        from autoretrain.monitoring.windows import adhoc_drift

        if body.labels is not None and len(body.labels) != len(body.messages):
            raise HTTPException(422, f"labels has {len(body.labels)} entries but messages has "
                                     f"{len(body.messages)}; give one label (or null) per message")
        state = service.manager.state
        if state.champion is None:
            raise HTTPException(503, f"not ready: {service.not_ready_reason(state)}")
        from autoretrain.registry import RegistryError

        try:
            champion = champion_for(state.champion.ref.version)
        except RegistryError as err:  # e.g. a champion registered by hand, without its training run
            raise HTTPException(409, f"no drift reference for this champion: {err}") from err
        except Exception as err:  # noqa: BLE001 - the registry or artifact store is down: the caller may retry
            log.warning("cannot build the drift reference: %s", err)
            raise HTTPException(503, f"drift reference unavailable: {err}") from err
        # a plain dict, as the route declares (FastAPI would read a TypedDict as a response model)
        return dict(adhoc_drift(settings, champion, list(body.messages), body.labels))


@contextmanager
def _database(what: str) -> Generator[None, None, None]:
    """Turn a database error into a 503 that names the operation (the client did nothing wrong)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as err:
        log.error("database error during %s: %s", what, err)
        raise HTTPException(503, f"{what}: the database is unavailable, retry later") from err


def _models_payload(service: PredictionService) -> dict[str, Any]:
    state = service.manager.state
    return {"model_name": service.model_name, "routing": state.routing.as_dict(),
            "variants": {alias: m.describe() for alias, m in state.models.items()},
            "last_check": state.checked_at.isoformat() if state.checked_at else None,
            "recent_failures": list(service.manager.failures)}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI wraps body-reading errors in a bare 400
            return JSONResponse({"detail": str(exc.__cause__)}, status_code=413)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors, "message": _summary(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)


def _summary(errors: Any) -> str:
    """One line for people: ``body.message: String should have at most 5000 characters``."""
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            parts.append(f"the request body is not valid JSON ({reason})")
            continue
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        if not where and e.get("type") in ("model_attributes_type", "dict_type", "missing"):
            parts.append("the request body must be a JSON object, sent with Content-Type: application/json")
            continue
        parts.append(f"{where or 'body'}: {e.get('msg', 'invalid').removeprefix('Value error, ')}")
    return "; ".join(parts)
