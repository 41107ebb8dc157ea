"""Routing of the prediction service: sticky hashing, canary and A/B shares, configuration checks."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from collections import Counter

import pytest

from autoretrain.config import Settings
from autoretrain.serving.routing import (
    CHALLENGER,
    CHAMPION,
    RoutingConfig,
    RoutingError,
    bucket,
    choose,
    from_settings,
    parse_weights,
)

SALT = "autoretrain"
USERS = [f"user-{i}" for i in range(10_000)]


def test_bucket_is_the_first_8_bytes_of_an_hmac_of_the_key_with_the_salt():
    expected = int.from_bytes(hmac.digest(b"autoretrain", b"user-1", hashlib.sha256)[:8], "big") / 2**64
    assert bucket("user-1", SALT) == expected == 0.7203540010252366


def test_bucket_is_the_same_in_another_process_with_another_hash_seed():
    code = ("from autoretrain.serving.routing import bucket; "
            "print(','.join(repr(bucket(f'user-{i}', 'autoretrain')) for i in range(50)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ",".join(repr(bucket(f"user-{i}", SALT)) for i in range(50))


def test_canary_10_percent_routes_10_percent_of_10000_users():
    config = RoutingConfig(mode="canary", canary_percent=10)
    share = Counter(choose(config, user, SALT) for user in USERS)
    assert share[CHALLENGER] == 1003  # pinned: a change of the hash would reshuffle every user (HMAC since issue 12)
    assert abs(share[CHALLENGER] / len(USERS) - 0.10) <= 0.02
    assert share[CHAMPION] == len(USERS) - 1003


def test_same_user_same_variant_every_time():
    config = RoutingConfig(mode="canary", canary_percent=50)
    first = [choose(config, user, SALT) for user in USERS[:500]]
    assert [choose(config, user, SALT) for user in USERS[:500]] == first


def test_another_salt_reshuffles_users():
    config = RoutingConfig(mode="canary", canary_percent=10)
    a = {u for u in USERS if choose(config, u, SALT) == CHALLENGER}
    b = {u for u in USERS if choose(config, u, "other-salt") == CHALLENGER}
    assert len(b) == 962 and len(a & b) < 200  # independent draws overlap ~10 %


@pytest.mark.parametrize(("percent", "expected"), [(0, 0), (100, 10_000), (0.5, 61)])
def test_canary_edges(percent, expected):
    config = RoutingConfig(mode="canary", canary_percent=percent)
    assert sum(choose(config, u, SALT) == CHALLENGER for u in USERS) == expected


def test_ab_weights_split_users_by_weight():
    config = RoutingConfig(mode="ab", ab_weights=((CHAMPION, 70), (CHALLENGER, 20), ("candidate-b", 10)))
    share = Counter(choose(config, u, SALT) for u in USERS)
    assert share == {CHAMPION: 6927, CHALLENGER: 2056, "candidate-b": 1017}
    for name, weight in config.ab_weights:
        assert abs(share[name] / len(USERS) - weight / 100) <= 0.02


def test_ab_variant_with_zero_weight_gets_nobody_and_is_not_loaded():
    config = RoutingConfig(mode="ab", ab_weights=((CHAMPION, 0), (CHALLENGER, 1), ("b", 0)))
    assert {choose(config, u, SALT) for u in USERS[:1000]} == {CHALLENGER}
    assert config.variants == (CHAMPION, CHALLENGER)


@pytest.mark.parametrize(("mode", "variants", "shadow"), [
    ("full", (CHAMPION,), None),
    ("shadow", (CHAMPION, CHALLENGER), CHALLENGER),
    ("canary", (CHAMPION, CHALLENGER), None),
    ("ab", (CHAMPION, CHALLENGER), None),
])
def test_variants_to_load_and_shadow(mode, variants, shadow):
    config = RoutingConfig(mode=mode)
    assert config.variants == variants
    assert config.shadow == shadow


@pytest.mark.parametrize("mode", ["full", "shadow"])
def test_full_and_shadow_always_answer_with_the_champion(mode):
    config = RoutingConfig(mode=mode, canary_percent=100)
    assert {choose(config, u, SALT) for u in USERS[:1000]} == {CHAMPION}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "blue-green"}, "routing mode 'blue-green' is not one of ['full', 'shadow', 'canary', 'ab']"),
    ({"canary_percent": 100.5}, "canary_percent=100.5 must be between 0 and 100"),
    ({"canary_percent": -1}, "canary_percent=-1 must be between 0 and 100"),
    ({"ab_weights": (("a", 1), ("a", 2))}, "ab weights name a variant twice: ['a', 'a']"),
    ({"ab_weights": (("a", -1),)}, "ab weight of 'a' is -1; expected an integer 0..1000000"),
    ({"ab_weights": (("a", True),)}, "ab weight of 'a' is True; expected an integer 0..1000000"),
    ({"ab_weights": (("a", 1.5),)}, "ab weight of 'a' is 1.5; expected an integer 0..1000000"),
    ({"ab_weights": (("1abc", 1),)}, "ab variant '1abc' is not a registry alias"),
    ({"mode": "ab", "ab_weights": (("a", 0),)}, "ab mode needs at least one variant with a weight above 0"),
    ({"ab_weights": tuple((f"v{i}", 1) for i in range(11))}, "ab weights name 11 variants; at most 10 are allowed"),
])
def test_bad_configurations_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(RoutingError) as err:
        RoutingConfig(**kwargs)
    assert str(err.value).startswith(message)


def test_from_dict_round_trip_and_errors():
    config = RoutingConfig(mode="ab", canary_percent=5.0, ab_weights=((CHAMPION, 3), ("b", 1)))
    assert RoutingConfig.from_dict(config.as_dict()) == config
    assert config.as_dict() == {"mode": "ab", "canary_percent": 5.0, "ab_weights": {CHAMPION: 3, "b": 1}}
    assert RoutingConfig.from_dict({"mode": "canary"}) == RoutingConfig(mode="canary")
    with pytest.raises(RoutingError, match=r"unknown routing keys \['percent'\]"):
        RoutingConfig.from_dict({"mode": "canary", "percent": 5})
    with pytest.raises(RoutingError, match="ab_weights must map alias -> weight, got list"):
        RoutingConfig.from_dict({"mode": "ab", "ab_weights": [["a", 1]]})
    with pytest.raises(RoutingError, match="canary_percent must be a number, got '5'"):
        RoutingConfig.from_dict({"mode": "canary", "canary_percent": "5"})


def test_parse_weights():
    assert parse_weights(["champion=50", " challenger = 7"]) == ((CHAMPION, 50), (CHALLENGER, 7))
    with pytest.raises(RoutingError, match=r"ab variant 'champion' must look like alias=weight"):
        parse_weights(["champion"])
    with pytest.raises(RoutingError, match=r"ab variant 'b=-1' must look like alias=weight"):
        parse_weights(["b=-1"])


def test_from_settings():
    settings = Settings(routing_mode="canary", canary_percent=25, ab_variants=("champion=1", "x=2"))
    assert from_settings(settings) == RoutingConfig(mode="canary", canary_percent=25.0,
                                                    ab_weights=((CHAMPION, 1), ("x", 2)))
