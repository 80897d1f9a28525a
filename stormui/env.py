"""Reading settings from the environment: a bad value names its variable."""

import ipaddress
import math
import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from clusterstate.paths import is_valid_id

_TRUE = {"true": True, "false": False}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return _TRUE[raw.strip().lower()]
    except KeyError:
        raise ImproperlyConfigured(f"{name} must be 'true' or 'false', not {raw!r}") from None


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name) or default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return value


def env_number(name: str, default: float, minimum: float = 0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if not value >= minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number, not {raw!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_zk_servers(name: str, default: str) -> list[str]:
    servers = env_list(name, default)
    if not servers:
        raise ImproperlyConfigured(f"{name} must list at least one host:port")
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{name} entries must be host:port, not {server!r}")
    return servers


def env_zk_root(name: str, default: str) -> str:
    root = env_str(name, default)
    segments = root.split("/")
    if not root.startswith("/") or root == "/" or not all(map(is_valid_id, segments[1:])):
        raise ImproperlyConfigured(
            f"{name} must be an absolute ZooKeeper path like /storm, not {root!r}"
        )
    return root.rstrip("/")


def env_networks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks in CIDR notation (``10.0.0.0/8``, ``::1/128``; a bare address is one host)."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} entries must be networks like 10.0.0.0/8, not {item!r}: {exc}"
            ) from None
    return networks


def env_hosts(name: str, default: str) -> list[str]:
    """Host names, as Django's ALLOWED_HOSTS takes them: not URLs, not empty."""
    hosts = env_list(name, default)
    if not hosts:
        raise ImproperlyConfigured(f"{name} must list at least one host name")
    for host in hosts:
        if "/" in host or any(ch.isspace() for ch in host):
            raise ImproperlyConfigured(f"{name} entries must be host names, not {host!r}")
    return hosts


#: the default port of a Redis Sentinel
SENTINEL_PORT = 26379


def env_redis_url(name: str) -> str:
    """A Redis URL (``redis://``, ``rediss://`` or ``unix://``), or Sentinels
    (``redis+sentinel://[:password@]host[:port],host[:port]/<master name>[/<db>]``), or
    ``""`` when unset."""
    raw = env_str(name, "").strip()
    if not raw:
        return ""
    try:
        if raw.startswith("redis+sentinel://"):
            redis_hosts(raw)
            return raw
        url = urlsplit(raw)
        url.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("redis", "rediss", "unix") or not (url.netloc or url.path):
        raise ImproperlyConfigured(
            f"{name} must be a redis://, rediss://, unix:// or redis+sentinel:// URL, not {raw!r}"
        )
    return raw


#: How long the channel layer's connections wait for a reply before taking Redis for gone.
#: Longer than channels_redis's blocking receive (``brpop_timeout``, 5 s), which on an idle
#: channel only answers when it runs out: redis-py (since 6) gives up on a read after 5 s by
#: default, so each idle receive failed as if Redis were away and every socket resynced.
LAYER_SOCKET_TIMEOUT_SECS = 15.0


def redis_hosts(url: str) -> list:
    """channels_redis's ``hosts`` for a URL :func:`env_redis_url` took: the URL itself, or
    for ``redis+sentinel://`` the Sentinels' addresses, the master's name and its database
    (and password), which channels_redis asks the Sentinels for (failing over with them);
    either with :data:`LAYER_SOCKET_TIMEOUT_SECS`.

    :raises ValueError: on a ``redis+sentinel://`` URL without hosts or a master's name.
    """
    if not url.startswith("redis+sentinel://"):
        return [{"address": url, "socket_timeout": LAYER_SOCKET_TIMEOUT_SECS}]
    rest = url.removeprefix("redis+sentinel://")
    password = None
    if "@" in rest:
        credentials, rest = rest.rsplit("@", 1)
        password = credentials.split(":", 1)[-1] or None
    netloc, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    sentinels = []
    for host in filter(None, netloc.split(",")):
        name, _, port = host.partition(":")
        sentinels.append((name, int(port) if port else SENTINEL_PORT))
    if not sentinels or not parts or len(parts) > 2:
        raise ValueError("redis+sentinel://host[:port],.../<master name>[/<db>]")
    entry = {
        "sentinels": sentinels,
        "master_name": parts[0],
        "db": int(parts[1:] and parts[1] or 0),
        "socket_timeout": LAYER_SOCKET_TIMEOUT_SECS,
    }
    if password is not None:
        entry["password"] = password
    return [entry]


#: the names a log viewer URL template may use
LOG_URL_FIELDS = ("host", "port", "storm_id", "task_id")


def env_log_url(name: str) -> str | None:
    """A log viewer URL template (``{host}``, ``{port}``, ``{storm_id}``, ``{task_id}``), or
    ``None`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://", "/")):
        raise ImproperlyConfigured(f"{name} must be an http(s) URL or a path, not {raw!r}")
    try:
        raw.format(**dict.fromkeys(LOG_URL_FIELDS, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"{name} may only name {{host}}, {{port}}, {{storm_id}} and {{task_id}}: {exc}"
        ) from None
    return raw
