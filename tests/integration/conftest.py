"""Receivers on loopback for the alert channels: a Slack-compatible HTTP server and a real SMTP server.

The Slack receiver speaks the parts of Slack's protocol the provider's hooks use:
``POST /services/<token>`` answers ``ok`` (200), ``POST /api/chat.postMessage`` answers
``{"ok": true, ...}`` when the ``Authorization: Bearer`` token matches. Every request is recorded
(path, headers, parsed body), and ``fail_with`` makes it answer like a misconfigured workspace.

The SMTP receiver is aiosmtpd's server (``smtp_receiver``): it accepts mail after ``AUTH`` with
:data:`SMTP_USER`/:data:`SMTP_PASSWORD` (plain text: loopback only) and keeps every message.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import json
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest

WEBHOOK_TOKEN = "T0AUTO/B0RETRAIN/xyzzy"
API_TOKEN = "xoxb-autoretrain-test"
SMTP_USER = "autoretrain"
SMTP_PASSWORD = "smtp-test-password-5c1f"  # noqa: S105 - a loopback test server's


@dataclass
class SlackRequest:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class SlackReceiver:
    base: str
    requests: list[SlackRequest] = field(default_factory=list)
    fail_with: str | None = None  # e.g. "channel_not_found" (API) / "no_service" (webhook, 404)

    @property
    def webhook_url(self) -> str:
        return f"{self.base}/services/{WEBHOOK_TOKEN}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base}/api/"

    def webhook_connection(self) -> str:
        """``AIRFLOW_CONN_<ID>`` value (JSON) for a Slack incoming-webhook connection."""
        return json.dumps({"conn_type": "slackwebhook", "password": self.webhook_url})

    def api_connection(self) -> str:
        """``AIRFLOW_CONN_<ID>`` value (JSON) for a Slack API connection."""
        return json.dumps({"conn_type": "slack", "password": API_TOKEN,
                           "extra": {"base_url": self.api_base_url}})


def _handler(receiver: SlackReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            content_type = self.headers.get("Content-Type", "")
            body = json.loads(raw) if "json" in content_type else dict(parse_qsl(raw))
            receiver.requests.append(SlackRequest(self.path, dict(self.headers), body))
            if self.path == f"/services/{WEBHOOK_TOKEN}":
                status, reply, kind = (404, receiver.fail_with, "text/html") if receiver.fail_with else (
                    200, "ok", "text/html")
            elif self.path == "/api/chat.postMessage":
                if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
                    status, reply = 200, json.dumps({"ok": False, "error": "invalid_auth"})
                elif receiver.fail_with:
                    status, reply = 200, json.dumps({"ok": False, "error": receiver.fail_with})
                else:
                    status, reply = 200, json.dumps({"ok": True, "channel": "C0AUTORETRAIN", "ts": "1700000000.000100",
                                                     "message": {"text": body.get("text")}})
                kind = "application/json; charset=utf-8"
            else:
                status, reply, kind = 404, "no_service", "text/html"
            data = reply.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    """A fresh receiver on 127.0.0.1 (a free port) for one test."""
    with slack_receiving() as receiver:
        yield receiver


@contextlib.contextmanager
def slack_receiving() -> Generator[SlackReceiver, None, None]:
    """A Slack receiver for the length of the block (module fixtures use it directly)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    receiver = SlackReceiver(base=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------- SMTP
@dataclass
class SmtpMessage:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.Message


@dataclass
class SmtpReceiver:
    port: int
    messages: list[SmtpMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def connection(self, **extra: Any) -> str:
        """``AIRFLOW_CONN_<ID>`` value (JSON) for an SMTP connection to this server (no TLS on loopback)."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port, "login": SMTP_USER,
                           "password": SMTP_PASSWORD, "extra": {"disable_tls": True, "disable_ssl": True,
                                                                "timeout": 10, "retry_limit": 0, **extra}})


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """aiosmtpd on 127.0.0.1 (a free port) for one test, with AUTH; every accepted message is kept."""
    with smtp_receiving() as receiver:
        yield receiver


@contextlib.contextmanager
def smtp_receiving() -> Generator[SmtpReceiver, None, None]:
    """An SMTP receiver for the length of the block (module fixtures use it directly)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.conftest import free_port

    receiver = SmtpReceiver(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
            receiver.messages.append(SmtpMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                                 email.message_from_bytes(envelope.original_content)))
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = auth_data.login.decode() == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD
        receiver.logins.append(f"{mechanism}:{auth_data.login.decode()}:{'ok' if ok else 'refused'}")
        return AuthResult(success=ok)

    controller = Controller(Handler(), hostname="127.0.0.1", port=receiver.port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


# ------------------------------------------------------------------------------ the closed loop
#: the fast training conf of the closed loop (one family, two CV folds)
FAST = {"families": ["logreg"], "cv_folds": 2}


@dataclass
class ClosedLoop:
    """What one closed loop left behind: run ids and states, the service's answers, the settings it ran on.

    ``env`` is the loop's AutoRetrain/MLflow environment (for processes started on the same stores);
    ``http`` talks to the prediction service that served its traffic, still running.
    """

    model_name: str
    env: dict[str, str]
    http: Any
    quiet: list[dict]
    before: list[dict]
    training_run: str
    training_state: str
    monitoring_run: str
    monitoring_states: dict[str, str]
    retrain_conf: dict
    retrain_run: str
    retrain_state: str
    retrain_states: dict[str, str]


def _replay(http: Any, messages: list[tuple[str, str]], token: str) -> list[dict]:
    import time

    answers = [http.post("/predict", json={"message": text, "user_id": f"u{i}"}).raise_for_status().json()
               for i, (text, _) in enumerate(messages)]
    time.sleep(0.5)  # the log writer flushes every 0.2 s
    for answer, (_, label) in zip(answers, messages, strict=True):
        http.post("/feedback", json={"request_id": answer["request_id"], "label": label},
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    return answers


@pytest.fixture(scope="package")
def closed_loop(airflow_db, mlflow_server, postgres_db) -> Iterator[ClosedLoop]:
    """The closed loop once for the integration tests that read it (test_closed_loop, test_modelops_ui).

    Real Postgres and mlflow server; the DAGs under ``dag.test()``; the prediction service as a uvicorn
    process: ``training`` registers v1, held-out SMS then a new campaign (which v1 calls ham) go through
    ``POST /predict`` with users' labels through ``POST /feedback``, ``monitoring`` measures that window
    and triggers ``retrain_compare_promote``, which (with monitoring's conf, no canary) promotes v2.
    The loop's environment is set only while it runs; the service keeps running until the package ends.
    """
    import contextlib
    import sys
    import uuid
    from datetime import UTC, datetime, timedelta

    import httpx

    from autoretrain.config import load_settings
    from devstack.scenarios import holdout_messages, referral_campaign
    from tests.conftest import (
        SESSION_TMP,
        dag_from_bag,
        free_port,
        migrated,
        retrain_conf_triggered_by,
        serving_process,
        task_states,
    )

    model_name = f"sms-spam-test-{uuid.uuid4().hex[:8]}"
    token = "closed-loop-feedback-token-" + uuid.uuid4().hex  # strong enough for the service (issue 12)
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "AUTORETRAIN_MODEL_NAME": model_name,
           "AUTORETRAIN_DATABASE_URL": migrated(postgres_db("closed_loop")), "AUTORETRAIN_FEEDBACK_TOKEN": token,
           "AUTORETRAIN_BOOTSTRAP_SAMPLES": "500", "AUTORETRAIN_RELOAD_INTERVAL_SECONDS": "0.5",
           "AUTORETRAIN_EXPERIMENT_NAME": f"closed-loop-{model_name}"}
    with contextlib.ExitStack() as service:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            settings = load_settings()
            trained = dag_from_bag("training").test(run_conf={**FAST})
            assert trained.state == "success", task_states(trained)
            port = free_port()
            cmd = [sys.executable, "-m", "autoretrain.serving", "--host", "127.0.0.1", "--port", str(port)]
            service.enter_context(serving_process(cmd, f"http://127.0.0.1:{port}/ready",
                                                  SESSION_TMP / "closed-loop-service.log"))
            http = service.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30))
            start = datetime.now(UTC) - timedelta(minutes=1)  # the DAG measures windows of 36 s or more
            quiet = _replay(http, holdout_messages(settings)[:150], token)
            before = _replay(http, referral_campaign(150, 50, seed=11), token)
            end = datetime.now(UTC) + timedelta(seconds=1)
            hours = (end - start).total_seconds() / 3600
            watched = dag_from_bag("monitoring").test(run_conf={"window_end": end.isoformat(), "window_hours": hours,
                                                                "drift_consecutive_windows": 1})
            watched_states = task_states(watched)
            assert watched_states["trigger_retrain"] == "success", watched_states
            conf = retrain_conf_triggered_by(watched)
            retrained = dag_from_bag("retrain_compare_promote").test(run_conf={**conf, **FAST, "canary_minutes": 0})
            loop = ClosedLoop(model_name=model_name, env=env, http=http, quiet=quiet, before=before,
                              training_run=trained.run_id, training_state=str(trained.state),
                              monitoring_run=watched.run_id, monitoring_states=watched_states, retrain_conf=conf,
                              retrain_run=retrained.run_id, retrain_state=str(retrained.state),
                              retrain_states=task_states(retrained))
        yield loop
