"""Who may open a live socket: only pages of this very site.

Channels' ``AllowedHostsOriginValidator`` lets in any Origin whose host is in
``ALLOWED_HOSTS``, whatever its port or scheme: another site on the same host
(``http://localhost:9999``) could open sockets with the user's cookies, which
are not port-bound. A browser's Origin must name the host (and port) the socket
itself was opened to, as Django's CSRF check asks of a POST.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _site_scheme(scope) -> str:
    """``https`` for a wss: socket (or one a trusted proxy says came over TLS), else ``http``."""
    if scope.get("scheme") == "wss":
        return "https"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header  # as Django names it: HTTP_X_FORWARDED_PROTO
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
        if _header(scope, header) == value:
            return "https"
    return "http"


def same_origin(scope) -> bool:
    """True if the socket's Origin is the site it was opened to, on an allowed host."""
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host:
        return False
    try:
        parsed = urlsplit(origin)
        origin_port = parsed.port or DEFAULT_PORTS.get(parsed.scheme)
    except ValueError:
        return False
    if parsed.scheme != _site_scheme(scope) or not parsed.hostname or origin_port is None:
        return False
    domain, port = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    # behind a proxy the Host header may leave out the port the browser used
    host_port = int(port) if port else DEFAULT_PORTS[parsed.scheme]
    origin_host = parsed.hostname.lower()
    if ":" in origin_host:  # an IPv6 literal: split_domain_port keeps its brackets
        origin_host = f"[{origin_host}]"
    return origin_host == domain and origin_port == host_port


class SameOriginValidator:
    """ASGI middleware: refuse the handshake of a socket from any other origin."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not same_origin(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
