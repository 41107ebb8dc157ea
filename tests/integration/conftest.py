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
