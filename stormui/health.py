"""What a load balancer and Prometheus ask: ``/healthz``, ``/readyz`` and ``/metrics``.

All three are open without a login (``STORMUI_LOGIN_REQUIRED`` too) and cheap: they
read the process's source and tallies, never the database. ``/metrics`` is open to
the networks of ``STORMUI_METRICS_ALLOW`` alone.
"""

from __future__ import annotations

import ipaddress
import logging
import threading

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics, pages
from .source import current_source, get_source

log = logging.getLogger(__name__)

_starting = threading.Lock()


def _start_source() -> None:
    """Open the process's source on a thread of its own, once: the first request usually
    does, but a process only ever asked whether it is ready must get ready too, and
    opening it may take as long as the first read of the whole cluster."""
    if not _starting.acquire(blocking=False):
        return  # being opened already

    def start():
        try:
            get_source()
        except Exception:
            log.exception("opening the cluster source failed")
        finally:
            _starting.release()

    threading.Thread(target=start, name="stormui-source-start", daemon=True).start()


def readiness() -> str | None:
    """Why this process should not get traffic yet, or ``None`` when it is ready."""
    source = current_source()
    if source is None:
        _start_source()
        return "starting: the cluster is not being read yet"
    if source.zk_connected and not source.syncing:  # with the mirror: in sync, a view built
        return None
    if source.storm_state is None:
        return "ZooKeeper has not been reached yet"
    if not source.state.connected:
        return "ZooKeeper is not connected"
    if source.syncing:  # the first read (and view): how far it has got, as pages say it
        return pages.syncing_text(*source.sync_progress())
    return "syncing: the cluster is being read again after a reconnect"


@require_safe
@never_cache
def healthz(request):
    # the process answers: that is all this says (ZooKeeper's state is /readyz's)
    return JsonResponse({"ok": True})


@require_safe
@never_cache
def readyz(request):
    reason = readiness()
    if reason is None:
        return JsonResponse({"ready": True})
    body = {"ready": False, "reason": reason}
    source = current_source()
    if source is not None and source.syncing:
        body["syncing"] = True  # a syncing page turns into the real one when this goes
    response = JsonResponse(body, status=503)
    # an answer, not a failure: a balancer asking every second while ZooKeeper is away
    # must not fill the log with django.request's "Service Unavailable" errors
    response._has_been_logged = True
    return response


def _client_address(request):
    # daphne puts the peer's address in REMOTE_ADDR; started with --proxy-headers it puts
    # the client's there instead (from the proxy's X-Forwarded-For), so the allow-list then
    # names the scrapers, not the proxy
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    # a daphne listening on :: sees IPv4 peers as ::ffff:a.b.c.d
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def scraper_allowed(request) -> bool:
    address = _client_address(request)
    return address is not None and any(
        address in network for network in settings.STORMUI_METRICS_ALLOW
    )


@require_safe
@never_cache
def metrics_view(request):
    if not scraper_allowed(request):
        return HttpResponse(
            "403 Forbidden: not in STORMUI_METRICS_ALLOW\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)
