"""REDIS_URL: one Redis, or Sentinels and the master's name, as channels_redis's hosts."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from stormui.env import LAYER_SOCKET_TIMEOUT_SECS, env_redis_url, redis_hosts

TIMEOUT = {"socket_timeout": LAYER_SOCKET_TIMEOUT_SECS}


def test_a_redis_url_is_the_one_host():
    assert redis_hosts("redis://127.0.0.1:6379/0") == [
        {"address": "redis://127.0.0.1:6379/0", **TIMEOUT}
    ]


def test_sentinels_name_the_master():
    assert redis_hosts("redis+sentinel://s1,s2:26380/dashboard") == [
        {
            "sentinels": [("s1", 26379), ("s2", 26380)],
            "master_name": "dashboard",
            "db": 0,
            **TIMEOUT,
        }
    ]
    assert redis_hosts("redis+sentinel://:secret@s1:1/dashboard/3") == [
        {
            "sentinels": [("s1", 1)],
            "master_name": "dashboard",
            "db": 3,
            "password": "secret",
            **TIMEOUT,
        }
    ]


def test_the_layers_reads_outwait_its_blocking_receive():
    """channels_redis blocks a receive up to ``brpop_timeout`` on an idle channel: a read
    that gave up first would take Redis for gone, and resync every socket, every 5 s."""
    from channels_redis.core import RedisChannelLayer

    assert LAYER_SOCKET_TIMEOUT_SECS > RedisChannelLayer.brpop_timeout


@pytest.mark.parametrize(
    "raw",
    [
        "redis+sentinel://s1",  # no master's name
        "redis+sentinel:///dashboard",  # no Sentinel
        "redis+sentinel://s1:port/dashboard",
        "redis+sentinel://s1/dashboard/0/extra",
        "localhost:6379",
    ],
)
def test_a_bad_url_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("REDIS_URL", raw)
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        env_redis_url("REDIS_URL")


def test_a_sentinel_url_is_taken(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://s1,s2/dashboard/1")
    assert env_redis_url("REDIS_URL") == "redis+sentinel://s1,s2/dashboard/1"
