"""Access rules of the prediction service: token strength, the api_token fallback, the routing salt file."""

from __future__ import annotations

import os
import secrets
import stat
import threading
import uuid
from collections import Counter

import pytest

from autoretrain.config import Settings
from autoretrain.serving import access
from autoretrain.serving.routing import CHALLENGER, RoutingConfig, choose

STRONG = secrets.token_urlsafe(32)
OTHER = secrets.token_urlsafe(32)


@pytest.mark.parametrize(("value", "reason"), [
    ("a", "has 1 characters, fewer than 32"),
    ("change-me", "is an example value"),
    ("autoretrain", "is an example value"),
    ("x" * 64, "repeats the same 1 characters"),
    ("abcd" * 8, "repeats the same 4 characters"),
    ("passwordpasswordpasswordpassword1", "has low entropy (8 distinct characters"),
])
def test_weak_secrets_are_named_with_the_reason(value, reason):
    assert reason in (access.secret_problem(value) or "")
    with pytest.raises(access.WeakSecretError) as err:
        access.check_secret("admin_token", value)
    assert str(err.value).startswith("admin_token (AUTORETRAIN_ADMIN_TOKEN) ")
    assert str(err.value).endswith("Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_urlsafe(24),
                                  lambda: secrets.token_hex(32), lambda: uuid.uuid4().hex, lambda: str(uuid.uuid4())])
def test_generated_secrets_pass(make):
    assert [access.secret_problem(make()) for _ in range(500)] == [None] * 500


def test_the_env_example_placeholders_are_refused():
    from tests.unit.deploy.test_compose import ENV_EXAMPLE, read_env_file

    env = read_env_file(ENV_EXAMPLE)
    for name in ("AUTORETRAIN_FEEDBACK_TOKEN", "AUTORETRAIN_ADMIN_TOKEN", "AUTORETRAIN_ROUTING_SALT"):
        assert access.secret_problem(env[name]), f"{name}={env[name]!r} in .env.example would be accepted"


def test_each_role_has_its_own_token_and_api_token_fills_in(caplog):
    assert access.tokens_for(Settings(feedback_token=STRONG, admin_token=OTHER)) == access.Tokens(STRONG, OTHER)
    assert access.tokens_for(Settings()) == access.Tokens("", "")  # both roles off
    assert access.tokens_for(Settings(api_token=STRONG)) == access.Tokens(STRONG, STRONG)
    assert access.tokens_for(Settings(api_token=STRONG, admin_token=OTHER)) == access.Tokens(STRONG, OTHER)
    access.warn_deprecated(Settings(api_token=STRONG, admin_token=OTHER))
    assert "api_token is deprecated: it stands in for feedback_token" in caplog.text
    with pytest.raises(access.WeakSecretError, match="feedback_token and admin_token are the same value"):
        access.tokens_for(Settings(feedback_token=STRONG, admin_token=STRONG))
    with pytest.raises(access.WeakSecretError, match=r"^api_token \(AUTORETRAIN_API_TOKEN\) has 1 characters"):
        access.tokens_for(Settings(api_token="a"))


def test_secrets_are_masked_and_not_in_repr():
    settings = Settings(feedback_token=STRONG, admin_token=OTHER, routing_salt=STRONG + "x")
    shown = settings.as_dict()
    assert [shown[k] for k in ("feedback_token", "admin_token", "routing_salt")] == ["***"] * 3
    assert STRONG not in repr(settings) and OTHER not in repr(settings)


def test_the_routing_salt_is_generated_once_with_mode_0600(tmp_path):
    settings = Settings(state_dir=str(tmp_path / "state"))
    salts: list[str] = []
    threads = [threading.Thread(target=lambda: salts.append(access.routing_salt(settings))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = tmp_path / "state" / access.SALT_FILE
    assert len(set(salts)) == 1 and salts[0] == path.read_text().strip()
    assert access.secret_problem(salts[0]) is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [access.SALT_FILE]  # no temporary file left
    assert access.with_routing_salt(settings).routing_salt == salts[0]


def test_a_weak_or_public_routing_salt_is_refused(tmp_path):
    with pytest.raises(access.WeakSecretError, match=r"^routing_salt \(AUTORETRAIN_ROUTING_SALT\) is an example"):
        access.routing_salt(Settings(routing_salt="autoretrain"))
    (tmp_path / access.SALT_FILE).write_text("short\n")
    with pytest.raises(access.WeakSecretError, match="delete the file to generate a new one"):
        access.routing_salt(Settings(state_dir=str(tmp_path)))


def test_ids_precomputed_with_the_public_salt_reach_the_challenger_at_the_canary_rate():
    """The attack: pick user_ids that the public default salt sends to the challenger.

    With the old public salt, 100 % of the attacker's ids hit the challenger; with a secret salt
    they land there at the canary share, like anyone's (binomial bounds, 20,000 ids).
    """
    config = RoutingConfig(mode="canary", canary_percent=10)
    candidates = (f"attacker-{i}" for i in range(400_000))
    chosen = [u for u in candidates if choose(config, u, "autoretrain") == CHALLENGER][:20_000]
    assert len(chosen) == 20_000
    assert all(choose(config, u, "autoretrain") == CHALLENGER for u in chosen)  # the attack on the old salt
    hits = Counter(choose(config, u, access.routing_salt(Settings(routing_salt=STRONG))) for u in chosen)
    share = hits[CHALLENGER] / len(chosen)
    assert 0.09 < share < 0.11, share  # 10 % +- 5 s.d. (s.d. 0.21 %)
