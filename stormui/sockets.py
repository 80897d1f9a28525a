"""Who the user of a live socket is: Channels' session and auth middleware, read-only.

Channels' ``SessionMiddleware`` wraps the application's ``send`` so that an HTTP
response can save the session and set its cookie. A socket never does either (its
messages are not ``http.response.start``), yet the wrapper still looks at the lazy
session and at Django's settings for every message sent: with hundreds of sockets per
daphne that was a tenth of its CPU per frame (a py-spy profile of
``bench.live_fanout --sockets 2000 --daphnes 4``, ``docs/benchmarks.md``). Here the
session is resolved into the scope as Channels does it, and ``send`` is the server's.
The live sockets only read the session (:func:`stormui.consumers.still_logged_in`).
"""

from __future__ import annotations

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware


class ReadOnlySessionMiddleware(SessionMiddleware):
    """Channels' :class:`~channels.sessions.SessionMiddleware` without its ``send`` wrapper
    (see the module's docstring): for applications that never change the session."""

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def SocketAuthMiddlewareStack(inner):  # noqa: N802  (named as Channels' AuthMiddlewareStack)
    """Channels' ``AuthMiddlewareStack`` with the read-only session middleware."""
    return CookieMiddleware(ReadOnlySessionMiddleware(AuthMiddleware(inner)))
