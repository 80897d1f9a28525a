"""A page that needs the database while it does not answer: 503 saying so, not a 500.

PostgreSQL restarting or down: a logged-in page reads its session, an admin action its
user, lock and audit. The view raises Django's :class:`~django.db.OperationalError` (or
:class:`~django.db.InterfaceError`); this answers 503 with ``Retry-After`` and a page that
says the database is not reachable, logged as one warning line rather than a server error
with its trace. An admin action refused so has not reached ZooKeeper (its lock is taken
in the database first), unless the database went away between its one write to ZooKeeper
and its audit. The next request connects again (connections are not kept:
``conn_max_age=0``). The JSON API says the same in JSON
(:func:`stormui.decorators.json_errors`).
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template import loader

log = logging.getLogger(__name__)

RETRY_AFTER_SECS = 5


class DatabaseUnreachableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning(
            "%s %s: the database is not reachable: %s", request.method, request.path, exception
        )
        # no context, no source: like the 500 page, this one renders whatever is down
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECS)
        return response
