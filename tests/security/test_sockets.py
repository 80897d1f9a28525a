"""The live sockets against hostile clients: other origins, anonymous callers when a login is
required, sessions that end while the socket is open, arbitrary paths. A refusal carries no
data, and nothing a client sends makes an exception escape the application."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stormui import consumers, live
from stormui.asgi import application
from tests.stormui.conftest import HEALTHY

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.timeout(180),
    pytest.mark.django_db(transaction=True),
]

SOCKETS = ("/ws/cluster/", "/ws/errors/", f"/ws/storms/{HEALTHY}/")
#: a wait longer than this is stuck, however loaded the machine (seconds)
STUCK_SECS = 90


def connect(path: str, origin: bytes | None = b"http://localhost", host=b"localhost", cookie=None):
    headers = [(b"host", host)]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def refused(comm) -> bool:
    """True if the handshake is refused, or accepted and closed with nothing sent first."""
    try:
        connected, _ = await comm.connect(timeout=STUCK_SECS)
        if not connected:
            return await comm.receive_nothing(timeout=0.2)
        first = await comm.receive_output(timeout=STUCK_SECS)
        return first["type"] == "websocket.close"
    finally:
        await comm.disconnect()


@pytest_asyncio.fixture
async def live_cluster(known_cluster):
    channel_layers.backends.clear()
    yield known_cluster
    live.stop_relay()
    await asyncio.sleep(0)
    channel_layers.backends.clear()
    # the consumers' database thread keeps its connection: close it while access is allowed,
    # or a later test without the database trips over it
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def operator_cookie(db):
    user = get_user_model().objects.create_user("watcher", password="pw-watcher-123")
    client = Client()
    client.force_login(user)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return user, session, f"{django_settings.SESSION_COOKIE_NAME}={session}".encode()


async def test_other_origins_are_refused(live_cluster):
    for path in SOCKETS:
        for origin in (
            b"http://evil.example",
            b"null",
            b"http://localhost.evil.example",
            b"http://localhost:9999",  # another site on the same host is another origin
            b"https://localhost",
            b"file://",
        ):
            assert await refused(connect(path, origin=origin)), (path, origin)
        assert await refused(connect(path, origin=None)), path  # no Origin at all
        # the page's own origin is let in
        comm = connect(path)
        assert (await comm.connect(timeout=STUCK_SECS))[0], path
        assert (await comm.receive_json_from(timeout=STUCK_SECS))["type"] == "snapshot"
        await comm.disconnect()


async def test_anonymous_sockets_are_refused_when_login_is_required(
    live_cluster, settings, operator_cookie
):
    settings.STORMUI_LOGIN_REQUIRED = True
    for path in (*SOCKETS, "/ws/storms/no-such-storm-1-1/"):
        # the same refusal whether the storm exists or not: nothing to probe
        # closed as logged out, with nothing sent: the page offers the login
        comm = connect(path)
        assert (await comm.connect(timeout=STUCK_SECS))[0], path
        closed = await comm.receive_output(timeout=STUCK_SECS)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_LOGGED_OUT}, path
        await comm.disconnect()
        assert await refused(connect(path, cookie=b"sessionid=forged-or-expired")), path
    # with a session, the same sockets open
    _, _, cookie = operator_cookie
    comm = connect(SOCKETS[0], cookie=cookie)
    assert (await comm.connect(timeout=STUCK_SECS))[0]
    assert (await comm.receive_json_from(timeout=STUCK_SECS))["type"] == "snapshot"
    await comm.disconnect()


async def _close_code(comm, timeout: float) -> int | None:
    """The code the server closes ``comm`` with (messages before are fine: they were in
    flight); fails if it is still open after ``timeout`` seconds, which only a socket that
    never closes takes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = await comm.receive_output(timeout=max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            raise AssertionError(f"still open after {timeout}s") from None
        if message["type"] == "websocket.close":
            return message.get("code")


def _deactivate(user):
    user.is_active = False
    user.save(update_fields=["is_active"])


def _log_out_everywhere(session_key):
    from django.contrib.sessions.models import Session

    Session.objects.filter(session_key=session_key).delete()


@pytest.mark.parametrize("ending", ["deactivated", "logged-out"])
async def test_a_socket_closes_when_its_session_ends(
    live_cluster, settings, operator_cookie, ending
):
    settings.STORMUI_LOGIN_REQUIRED = True
    user, session_key, cookie = operator_cookie
    comm = connect("/ws/errors/", cookie=cookie)
    assert (await comm.connect(timeout=STUCK_SECS))[0]
    assert (await comm.receive_json_from(timeout=STUCK_SECS))["type"] == "snapshot"
    # the socket is live: an error reaches it while the session holds
    writer = live_cluster.writer
    await asyncio.to_thread(writer.report_task_error, HEALTHY, 1, "before the end")
    while (message := await comm.receive_json_from(timeout=STUCK_SECS))["type"] != "error":
        pass
    assert message["error"] == "before the end"
    if ending == "deactivated":
        await sync_to_async(_deactivate)(user)
    else:
        await sync_to_async(_log_out_everywhere)(session_key)
    # errors keep coming; the socket must close instead of passing them on
    for i in range(3):
        await asyncio.to_thread(writer.report_task_error, HEALTHY, 1, f"after the end {i}")
    try:
        # closed for the login, not for failing or being slow
        assert await _close_code(comm, STUCK_SECS) == consumers.CLOSE_LOGGED_OUT
    finally:
        await comm.disconnect()


ws_ids = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(st.sampled_from("/.%\x00\x01\u202e<>\"'?# "), min_size=1, max_size=10),
    st.sampled_from(["..", ".", "%2F", "a/b", "x" * 300, "\x00"]),
    st.binary(min_size=1, max_size=10),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=ws_ids)
async def test_any_socket_path_is_refused_or_closed(live_cluster, raw):
    if raw == HEALTHY:
        return
    encoded = quote(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    for path in (f"/ws/storms/{encoded}/", f"/ws/{encoded}", f"/ws/cluster/{encoded}/"):
        # an exception escaping the application fails here
        assert await refused(connect(path)), path
