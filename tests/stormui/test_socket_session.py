"""The live sockets' session and auth stack (stormui.sockets): the user is known, and what
the socket sends goes to the server's own ``send``, unwrapped."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from stormui.sockets import SocketAuthMiddlewareStack

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def logged_in_cookie() -> str:
    get_user_model().objects.create_user("ann", password="a long pass phrase")
    client = Client()
    client.login(username="ann", password="a long pass phrase")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def run(cookie: str | None):
    seen = {}

    async def inner(scope, receive, send):
        seen.update(user=scope["user"], session=scope["session"], send=send)

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        pass

    headers = [(b"host", b"localhost")]
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    scope = {"type": "websocket", "path": "/ws/errors/", "headers": headers, "query_string": b""}
    await SocketAuthMiddlewareStack(inner)(scope, receive, send)
    return seen, send


async def test_a_logged_in_socket_knows_its_user_and_sends_unwrapped():
    cookie = await sync_to_async(logged_in_cookie)()
    seen, send = await run(cookie)
    assert seen["user"].is_authenticated and seen["user"].username == "ann"
    assert seen["session"].session_key == cookie
    assert seen["send"] is send  # Channels' session wrapper would stand between


async def test_a_socket_without_a_session_is_anonymous():
    seen, send = await run(None)
    assert not seen["user"].is_authenticated
    assert seen["send"] is send
