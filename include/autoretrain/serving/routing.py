"""Traffic routing: which registry alias (variant) serves a request, and which one shadows it.

Pure functions, no I/O. Assignment is sticky: the variant of a ``user_id`` comes from an
HMAC-SHA256 of the id keyed with the deployment's secret ``salt``, so it is the same in every
process and after every restart (Python's ``hash()`` is salted per process and would not be), and
nobody without the salt can compute which ids land on the challenger. ``user_id`` is a stickiness
key, not an identity: it is whatever the caller sends (see docs/deploy.md, "Tokens and roles").
Requests without a ``user_id`` hash their request id, which is random, so they are assigned per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoretrain.errors import AutoRetrainError

CHAMPION = "champion"
CHALLENGER = "challenger"
MODES = ("full", "shadow", "canary", "ab")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_MAX_WEIGHT = 1_000_000
MAX_VARIANTS = 10  # every variant is an alias polled and a model held in memory


class RoutingError(AutoRetrainError, ValueError):
    """A routing configuration that cannot be applied (unknown mode, bad percent or weights)."""


@dataclass(frozen=True)
class RoutingConfig:
    """How traffic is split: ``full`` champion only; ``shadow`` champion answers, challenger also
    scores; ``canary`` ``canary_percent`` of users on the challenger; ``ab`` variants by weight."""

    mode: str = "full"
    canary_percent: float = 10.0
    ab_weights: tuple[tuple[str, int], ...] = ((CHAMPION, 50), (CHALLENGER, 50))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RoutingError(f"routing mode {self.mode!r} is not one of {list(MODES)}")
        if not 0.0 <= self.canary_percent <= 100.0:
            raise RoutingError(f"canary_percent={self.canary_percent} must be between 0 and 100")
        names = [name for name, _ in self.ab_weights]
        if len(names) > MAX_VARIANTS:
            raise RoutingError(f"ab weights name {len(names)} variants; at most {MAX_VARIANTS} are allowed")
        if len(set(names)) != len(names):
            raise RoutingError(f"ab weights name a variant twice: {names}")
        for name, weight in self.ab_weights:
            if not _ALIAS.match(name):
                raise RoutingError(f"ab variant {name!r} is not a registry alias (letters, digits, _ and -, "
                                   "starting with a letter, at most 64 characters)")
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= _MAX_WEIGHT:
                raise RoutingError(f"ab weight of {name!r} is {weight!r}; expected an integer 0..{_MAX_WEIGHT}")
        if self.mode == "ab" and sum(w for _, w in self.ab_weights) == 0:
            raise RoutingError("ab mode needs at least one variant with a weight above 0")

    @property
    def variants(self) -> tuple[str, ...]:
        """The aliases this configuration needs loaded; the champion always (it is the fallback)."""
        if self.mode == "full":
            return (CHAMPION,)
        if self.mode in ("shadow", "canary"):
            return (CHAMPION, CHALLENGER)
        return (CHAMPION, *(name for name, weight in self.ab_weights if weight > 0 and name != CHAMPION))

    @property
    def shadow(self) -> str | None:
        """The alias that scores every request without answering it (shadow mode only)."""
        return CHALLENGER if self.mode == "shadow" else None

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "canary_percent": self.canary_percent,
                "ab_weights": dict(self.ab_weights)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutingConfig:
        """Build from ``{"mode", "canary_percent"?, "ab_weights"?: {alias: weight}}``."""
        unknown = sorted(set(data) - {"mode", "canary_percent", "ab_weights"})
        if unknown:
            raise RoutingError(f"unknown routing keys {unknown}; known: mode, canary_percent, ab_weights")
        weights = data.get("ab_weights")
        if weights is None:
            weights = dict(cls.ab_weights)
        if not isinstance(weights, Mapping):
            raise RoutingError(f"ab_weights must map alias -> weight, got {type(weights).__name__}")
        percent = data.get("canary_percent", cls.canary_percent)
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise RoutingError(f"canary_percent must be a number, got {percent!r}")
        return cls(mode=str(data.get("mode", "full")), canary_percent=float(percent),
                   ab_weights=tuple((str(k), v) for k, v in weights.items()))


def parse_weights(items: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """``("champion=50", "challenger=50")`` -> ``(("champion", 50), ("challenger", 50))``."""
    out = []
    for item in items:
        name, sep, weight = item.partition("=")
        if not sep or not weight.strip().isdigit():
            raise RoutingError(f"ab variant {item!r} must look like alias=weight (e.g. challenger=10)")
        out.append((name.strip(), int(weight)))
    return tuple(out)


def from_settings(settings: Any) -> RoutingConfig:
    """The routing configured in the settings (``routing_mode``, ``canary_percent``, ``ab_variants``)."""
    return RoutingConfig(mode=settings.routing_mode, canary_percent=float(settings.canary_percent),
                         ab_weights=parse_weights(settings.ab_variants))


def bucket(key: str, salt: str) -> float:
    """A stable number in [0, 1) for ``key``: the first 8 bytes of HMAC-SHA256(key=salt, msg=key)."""
    digest = hmac.digest(salt.encode("utf-8", "surrogatepass"), key.encode("utf-8", "surrogatepass"),
                         hashlib.sha256)
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose(config: RoutingConfig, key: str, salt: str) -> str:
    """The variant (alias) that should answer the request keyed by ``key`` (user id or request id)."""
    if config.mode in ("full", "shadow"):
        return CHAMPION
    point = bucket(key, salt)
    if config.mode == "canary":
        return CHALLENGER if point * 100.0 < config.canary_percent else CHAMPION
    total = sum(weight for _, weight in config.ab_weights)
    target, running = point * total, 0
    for name, weight in config.ab_weights:
        running += weight
        if target < running:
            return name
    return next(name for name, weight in reversed(config.ab_weights) if weight > 0)  # float edge
