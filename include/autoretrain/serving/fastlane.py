"""A fast lane for the hot path: valid ``POST /predict`` requests answered without FastAPI's per-request
machinery (request object, dependency solving, response classes), which costs about as much as the
model itself.

It validates the body with the same pydantic model as the FastAPI route and calls the same
:meth:`PredictionService.predict`. Anything else (another path or method, a body that is not JSON
or does not validate, a service that is not ready) is handed to the FastAPI app with the body
replayed, so error answers and the OpenAPI docs have one owner. A test checks both lanes answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from time import perf_counter

from pydantic import ValidationError

from autoretrain.serving.schemas import MessageBase
from autoretrain.serving.service import NotReady, PredictionService
from autoretrain.serving.telemetry import ASGIApp, Message, Scope

Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class PredictFastLane:
    """ASGI middleware that serves valid ``POST <path>`` requests directly."""

    def __init__(self, app: ASGIApp, *, service: PredictionService, model: type[MessageBase],
                 path: str = "/predict") -> None:
        self.app, self.service, self.model, self.path = app, service, model, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST" \
                or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        body, more = await _read_body(receive)
        try:
            request = self.model.model_validate_json(body)
            answer, shadow = self.service.predict(request.message, request.user_id, started=started)
        except (ValidationError, NotReady):
            await self.app(scope, _replay(body, more, receive), send)  # FastAPI words the error
            return
        payload = json.dumps(answer, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        if shadow is not None:  # after the answer is sent, as a background task would
            self.service.shadow(shadow)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body; ``more`` is False when the client disconnected before sending it all."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay if complete else receive
