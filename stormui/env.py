"""Reading settings from the environment: a bad value names its variable."""

import os

from django.core.exceptions import ImproperlyConfigured

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
    if not root.startswith("/") or root == "/" or any(s in ("", ".", "..") for s in segments[1:]):
        raise ImproperlyConfigured(
            f"{name} must be an absolute ZooKeeper path like /storm, not {root!r}"
        )
    return root.rstrip("/")
