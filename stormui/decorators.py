"""Concerns shared by the JSON API's views: errors as JSON, login, allowed methods.

The API never answers with an HTML page or a redirect: every refusal or
failure is ``{"error": ...}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse

from clusterstate.errors import NotConnectedError

from .pages import syncing_text
from .source import get_source

log = logging.getLogger(__name__)

#: what an API call that needs the database answers while it does not (503)
DATABASE_UNREACHABLE = "the database is not reachable; try again shortly"


#: how soon a page or API call answered while the cluster is being read may ask again
SYNCING_RETRY_SECS = 2


def syncing_response(response):
    """``response``, marked as the cluster still being read: 503 with ``Retry-After``."""
    response.status_code = 503
    response["Retry-After"] = str(SYNCING_RETRY_SECS)
    # an answer, not a failure: django.request need not log every one as an error
    response._has_been_logged = True
    return response


def json_error(status: int, message: str, **headers) -> JsonResponse:
    """``{"error": message}`` with ``status``."""
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def json_errors(view):
    """Turn what a view raises into a JSON error: 404, 400, 403, 503 (ZooKeeper or the
    database unreachable), and 500 for the rest."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return json_error(404, str(exc) or "not found")
        except (BadRequest, SuspiciousOperation) as exc:
            return json_error(400, str(exc) or "bad request")
        except PermissionDenied as exc:
            return json_error(403, str(exc) or "forbidden")
        except NotConnectedError:
            return json_error(503, "ZooKeeper is not reachable; try again shortly")
        except (OperationalError, InterfaceError) as exc:
            # the database is down or restarting: Django connects again on the next request
            log.warning("API view %s: the database is not reachable: %s", view.__name__, exc)
            return json_error(503, DATABASE_UNREACHABLE, Retry_After="5")
        except Exception:
            log.exception("API view %s failed", view.__name__)
            return json_error(500, "internal server error")

    return wrapper


def api_login_required(view):
    """With ``STORMUI_LOGIN_REQUIRED``, answer anonymous callers 401 (never a login redirect)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        # read per request: the setting may change under tests
        if settings.STORMUI_LOGIN_REQUIRED and not request.user.is_authenticated:
            return json_error(401, "authentication required")
        return view(request, *args, **kwargs)

    return wrapper


def require_methods(*methods: str):
    """Answer other methods 405 in JSON, with the ``Allow`` header."""
    allowed = {m.upper() for m in methods}
    if "GET" in allowed:
        allowed.add("HEAD")

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in allowed:
                return json_error(
                    405, f"method {request.method} not allowed", Allow=", ".join(sorted(allowed))
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def cluster_read(view):
    """An endpoint of the cluster's figures: while the first read of the cluster runs, 503
    with ``Retry-After`` and ``"syncing": true`` (never a half-read cluster as whole)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        source = get_source()
        if source.syncing:
            text = syncing_text(*source.sync_progress())
            body = {"error": f"{text}; try again shortly", "syncing": True}
            return syncing_response(JsonResponse(body))
        return view(request, *args, **kwargs)

    return wrapper


def api_view(*methods: str):
    """An API endpoint: JSON errors, login when required, then the allowed methods (GET default)."""

    def decorator(view):
        return json_errors(api_login_required(require_methods(*(methods or ("GET",)))(view)))

    return decorator
