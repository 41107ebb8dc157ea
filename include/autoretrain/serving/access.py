"""Who may call what on the prediction service: bearer tokens per role, their strength, the routing salt.

Two roles, each with its own token: ``feedback`` (``POST /feedback``, the systems that report true
labels) and ``admin`` (``/admin/*`` and ``POST /drift/calculate``). A role whose token is empty is
switched off (403), never open. ``api_token`` is the deprecated single token of earlier versions:
while set, it stands in for whichever of the two is empty (a warning at start says so).

Every configured token and the routing salt must be strong (:func:`secret_problem`): at least 32
characters, not a repeated pattern, enough distinct characters, and not a value printed in
``.env.example`` or the docs. A weak one stops the service at start with one line.

The routing salt keys the sticky hash of :mod:`autoretrain.serving.routing`. Empty (the default)
means "generate one": :func:`routing_salt` creates ``<state_dir>/routing-salt`` (mode 0600) once and
every process on that state folder reads it; deployments whose processes do not share a folder
(compose, Kubernetes) set ``AUTORETRAIN_ROUTING_SALT`` to the same secret in every process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from autoretrain.config import Settings, SettingsError

log = logging.getLogger(__name__)

FEEDBACK, ADMIN = "feedback", "admin"
MIN_SECRET_CHARS = 32
MIN_DISTINCT_CHARS = 9
MIN_ENTROPY_BITS = 80.0  # length x Shannon entropy of its characters: ~150 for token_urlsafe(32), >= 89 for uuid4().hex
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
SALT_FILE = "routing-salt"
#: values printed in .env.example, the docs or earlier defaults: never accepted as a secret
KNOWN_EXAMPLES = frozenset({
    "change-me", "changeme", "autoretrain", "secret", "token", "admin", "password",
    "change-me-to-a-long-random-secret-of-32-chars-or-more",
})


class WeakSecretError(SettingsError):
    """A token or the routing salt is too weak (short, patterned, or a published example value)."""


def secret_problem(value: str) -> str | None:
    """Why ``value`` is too weak to guard anything, or None when it is strong enough."""
    if value.strip().lower() in KNOWN_EXAMPLES:
        return "is an example value from .env.example or the docs"
    if len(value) < MIN_SECRET_CHARS:
        return f"has {len(value)} characters, fewer than {MIN_SECRET_CHARS}"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    for period in range(1, len(value) // 2 + 1):  # "abcd" * 8: as weak as its first period
        if len(value) % period == 0 and value == value[:period] * (len(value) // period):
            return f"repeats the same {period} characters"
    if len(counts) < MIN_DISTINCT_CHARS or bits < MIN_ENTROPY_BITS:
        return (f"has low entropy ({len(counts)} distinct characters, about {bits:.0f} bits; "
                f"{MIN_ENTROPY_BITS:.0f} needed)")
    return None


def check_secret(name: str, value: str) -> None:
    """Refuse a configured (non-empty) secret that is weak, naming the setting and how to make one."""
    if not value:
        return
    problem = secret_problem(value)
    if problem:
        raise WeakSecretError(f"{name} (AUTORETRAIN_{name.upper()}) {problem}; refusing to start. "
                              f"Generate one with: {GENERATE}")


@dataclass(frozen=True)
class Tokens:
    """The bearer token of each role after the ``api_token`` fallback; an empty token: role off."""

    feedback: str
    admin: str

    def of(self, role: str) -> str:
        return self.feedback if role == FEEDBACK else self.admin


def tokens_for(settings: Settings) -> Tokens:
    """The tokens in force, checked for strength (WeakSecretError names the weak one).

    ``feedback_token`` and ``admin_token`` must differ: one value for both is the shared token the
    split exists to end. The deprecated ``api_token`` fills in only what is empty.
    """
    for name in ("feedback_token", "admin_token", "api_token"):
        check_secret(name, getattr(settings, name))
    if settings.feedback_token and settings.feedback_token == settings.admin_token:
        raise WeakSecretError("feedback_token and admin_token are the same value; give each role its own "
                              f"token. Generate one with: {GENERATE}")
    return Tokens(feedback=settings.feedback_token or settings.api_token,
                  admin=settings.admin_token or settings.api_token)


def warn_deprecated(settings: Settings) -> None:
    """Log once at start what the deprecated ``api_token`` stands in for."""
    if not settings.api_token:
        return
    filled = [n for n in ("feedback_token", "admin_token") if not getattr(settings, n)]
    if filled:
        log.warning("api_token is deprecated: it stands in for %s; set feedback_token and admin_token "
                    "(AUTORETRAIN_FEEDBACK_TOKEN, AUTORETRAIN_ADMIN_TOKEN) and drop it", " and ".join(filled))
    else:
        log.warning("api_token is deprecated and ignored: feedback_token and admin_token are both set")


def routing_salt(settings: Settings) -> str:
    """The deployment's secret routing salt: the setting, else ``<state_dir>/routing-salt`` (created once)."""
    if settings.routing_salt:
        check_secret("routing_salt", settings.routing_salt)
        return settings.routing_salt
    path = settings.state_path / SALT_FILE
    if not path.exists():
        _create_salt(path)
    salt = path.read_text(encoding="utf-8").strip()
    problem = secret_problem(salt)
    if problem:
        raise WeakSecretError(f"the routing salt in {path} {problem}; delete the file to generate a new one "
                              "(it reshuffles sticky users) or set AUTORETRAIN_ROUTING_SALT")
    return salt


def with_routing_salt(settings: Settings) -> Settings:
    """``settings`` with ``routing_salt`` resolved: what the service and the canary check both hash with."""
    salt = routing_salt(settings)
    return settings if salt == settings.routing_salt else dataclasses.replace(settings, routing_salt=salt)


def _create_salt(path: Path) -> None:
    """Write a fresh salt to ``path`` (0600) unless another process got there first (atomic link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if the salt exists: every process ends up with the first one
            log.info("generated the routing salt in %s (a secret: keep it with the state folder)", path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
