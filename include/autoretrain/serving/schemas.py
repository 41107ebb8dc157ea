"""Request and response bodies of the prediction service (pydantic; they also make the OpenAPI docs).

Request bodies depend on the settings (message length limit, batch size, label names), so they
are built per app by :func:`request_models`, each on a static base class (:class:`MessageBase`,
:class:`BatchBase`, :class:`FeedbackBase`, :class:`DriftBase`) that declares its fields for the
type checker; the built class redeclares them with this deployment's limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from autoretrain.config import Settings

MAX_DRIFT_MESSAGES = 50_000  # highest drift_max_messages per POST /drift/calculate (the DAG handles bigger windows)
_USER_ID = Field(default=None, min_length=1, max_length=128,
                 description="Stable id of the end user; the same id always gets the same variant.")


def _valid_text(value: str, *, what: str, strip_check: bool = True) -> str:
    """Reject blank text and strings that are not valid Unicode (lone surrogates)."""
    if strip_check and not value.strip():
        raise ValueError(f"{what} is empty or only whitespace")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{what} is not valid Unicode (lone surrogate at position {err.start})") from err
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class MessageBase(_Strict):
    """One message to classify (the length limit is set per app)."""

    message: str
    user_id: str | None = None

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        return _valid_text(value, what="message")

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        return None if value is None else _valid_text(value, what="user_id")


class BatchBase(_Strict):
    """Messages classified in one request (the batch size limit is set per app)."""

    items: list[MessageBase]


class FeedbackBase(_Strict):
    request_id: str = Field(min_length=1, max_length=64, description="request_id of a /predict answer")
    source: str = Field(default="api", min_length=1, max_length=64,
                        description="who labelled it: a person, a downstream system...")
    label: str  # one of the deployment's labels (set per app)

    @field_validator("request_id", "source")
    @classmethod
    def _text(cls, value: str) -> str:
        return _valid_text(value, what="request_id/source")


class DriftBase(_Strict):
    """A batch of messages to compare with the champion's reference (limits and labels set per app)."""

    messages: list[str]
    labels: list[str | None] | None = None


@dataclass(frozen=True)
class RequestModels:
    predict: type[MessageBase]
    batch: type[BatchBase]
    feedback: type[FeedbackBase]
    drift: type[DriftBase]


def request_models(settings: Settings) -> RequestModels:
    """Request bodies with this deployment's limits and labels."""
    text = (str, Field(min_length=1, max_length=settings.max_message_chars,
                       description=f"The text to classify, 1..{settings.max_message_chars} characters; "
                                   "not blank. Unicode and emoji are fine."))
    predict = create_model("PredictRequest", __base__=MessageBase, message=text, user_id=(str | None, _USER_ID))
    # built at run time from the settings: Any, since mypy takes only static classes as type arguments
    item: Any = predict
    label: Any = Literal[tuple(settings.labels)]
    batch = create_model("BatchPredictRequest", __base__=BatchBase,
                         items=(list[item], Field(min_length=1, max_length=settings.max_batch_messages,
                                                  description="Messages, each routed on its own")))
    feedback = create_model("FeedbackRequest", __base__=FeedbackBase,
                            label=(label, Field(description=f"The true label: one of {list(settings.labels)}")))
    drift = create_model(
        "DriftRequest", __base__=DriftBase,
        messages=(list[str], Field(min_length=1,
                                   description=f"The batch to compare with the champion's reference "
                                               f"(1..{settings.drift_max_messages:,} messages, "
                                               "drift_max_messages; more: 413)")),
        labels=(list[label | None] | None, Field(default=None, description="True labels where known "
                                                 "(aligned with messages): enables the accuracy/F1/ECE checks")))
    return RequestModels(predict=predict, batch=batch, feedback=feedback, drift=drift)


# ------------------------------------------------------------------------------------ responses
class TopFeature(BaseModel):
    term: str
    weight: float = Field(description="Contribution of the term toward the positive label (negative: away)")


class PredictResponse(BaseModel):
    label: str
    spam_probability: float = Field(ge=0.0, le=1.0, description="P(positive label)")
    model_version: str
    variant: str = Field(description="The registry alias that answered: champion, challenger...")
    request_id: str = Field(description="Quote it in POST /feedback")
    timestamp: str = Field(description="ISO 8601, UTC")
    top_features: list[TopFeature]


class BatchPredictResponse(BaseModel):
    predictions: list[PredictResponse]


class FeedbackResponse(BaseModel):
    request_id: str
    label: str
    source: str
    recorded_at: str


class ErrorResponse(BaseModel):
    detail: str


class RoutingBody(_Strict):
    mode: Literal["full", "shadow", "canary", "ab"]
    canary_percent: float = Field(default=10.0, ge=0.0, le=100.0)
    ab_weights: dict[str, int] | None = Field(default=None, description="ab mode: alias -> integer weight")


class RoutingResponse(BaseModel):
    mode: str
    canary_percent: float
    ab_weights: dict[str, int]
    source: str = Field(description="override (set through this API, shared by all processes) or settings")


class ModelsResponse(BaseModel):
    model_name: str
    routing: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    last_check: str | None
    recent_failures: list[dict[str, Any]]
