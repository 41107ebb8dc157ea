"""Run the prediction service with uvicorn, one worker per process, until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

from autoretrain.config import Settings

#: requests in flight get this long after SIGTERM; with ``log_stop_seconds`` (10) it stays inside compose's
#: stop_grace_period (45 s) and the terminationGracePeriodSeconds documented for Kubernetes (45 s)
GRACEFUL_SECONDS = 25


def run(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve with uvicorn on ``host:port`` (defaults: ``serving_host``/``serving_port``) until SIGTERM/SIGINT.

    On a signal, uvicorn stops accepting, finishes the requests in flight (up to ``GRACEFUL_SECONDS``),
    then the app inserts the spooled prediction-log rows for up to ``log_stop_seconds``; what is
    left stays in the fsynced spool and is replayed at the next start. A database that is not migrated
    to head raises :class:`autoretrain.db.migrate.SchemaOutOfDate` before the port is bound.
    """
    import uvicorn

    from autoretrain.serving.app import check_database, create_app

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "mlflow.store", "mlflow.tracking", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = create_app(settings)
    check_database(app.state.engine)  # here, not only in the lifespan: one line instead of uvicorn's traceback
    config = uvicorn.Config(app, host=host or settings.serving_host,
                            port=port or settings.serving_port, workers=1, access_log=False,
                            log_level="info", timeout_graceful_shutdown=GRACEFUL_SECONDS, lifespan="on")
    uvicorn.Server(config).run()
