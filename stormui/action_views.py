"""Admin actions over HTTP: the storm page's confirmation forms, Storm's API, the audit page.

The views answer; :mod:`stormui.actions` authorises, decides and audits.
They are ``csrf_exempt`` only so that the CSRF check can run here, where a
failure is audited like any other refusal: a request made with a session
needs the token all the same; one made with an API token needs none.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import get_callable, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from . import actions
from .decorators import json_error, json_errors, require_methods
from .models import Action, AuditEntry, Outcome, ScheduledRemoval, Via

AUDIT_PAGE_SIZE = 100


class _CsrfCheck(CsrfViewMiddleware):
    # as Django REST framework's SessionAuthentication: the reason instead of a response
    def _reject(self, request, reason):
        return reason


def csrf_failure_reason(request) -> str | None:
    """Why Django's CSRF check refuses ``request``, or ``None`` if it passes."""
    check = _CsrfCheck(lambda request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def _remote_addr(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# -- pages -------------------------------------------------------------------------------------


@never_cache
@csrf_exempt  # checked in the decision, so that a failure is audited
def activate(request, storm_id):
    return _page_action(request, storm_id, Action.ACTIVATE)


@never_cache
@csrf_exempt  # checked in the decision, so that a failure is audited
def deactivate(request, storm_id):
    return _page_action(request, storm_id, Action.DEACTIVATE)


@never_cache
@csrf_exempt  # checked in the decision, so that a failure is audited
def remove(request, storm_id):
    return _page_action(request, storm_id, Action.REMOVE)


@never_cache
@csrf_exempt  # checked in the decision, so that a failure is audited
def kill(request, storm_id):
    return _page_action(request, storm_id, Action.KILL)


def _page_action(request, storm_id, action):
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    posted = request.method == "POST"
    decision = actions.decide_page_action(
        request.user,
        action,
        storm_id,
        _remote_addr(request),
        data=request.POST if posted else None,
        csrf_failure=lambda: csrf_failure_reason(request),
    )
    return _answer(request, decision)


def _answer(request, decision: actions.PageDecision):
    """The page that answers a page action's decision."""
    action, storm_id = decision.action, decision.storm_id
    if decision.answer == actions.LOGIN:
        # back to the confirmation form once logged in
        return redirect_to_login(request.path, settings.LOGIN_URL)
    if decision.answer == actions.CSRF_FAILED:
        return get_callable(settings.CSRF_FAILURE_VIEW)(request, reason=decision.reason)
    if decision.answer == actions.NOT_FOUND:
        raise Http404("no such storm")
    if decision.answer == actions.DONE:
        name, result = decision.storm_name, decision.result
        if result.ok:
            messages.success(request, f"{name}: {result.message}.")
        else:
            messages.error(request, f"{name}: {action} failed: {result.message}.")
        # a removed storm has no page left to go back to, nor has one that was not found
        gone = result.outcome == Outcome.NOT_FOUND or (result.ok and action == Action.REMOVE)
        return redirect("cluster") if gone else redirect("storm", storm_id)
    context = {"action": action, "storm_id": storm_id}
    if decision.answer == actions.REFUSED:
        context["refused"] = decision.reason
    else:  # CONFIRM
        context.update(
            storm_name=decision.storm_name,
            form=decision.form,
            post_url=reverse(f"storm-{action}", args=[storm_id]),
        )
    return render(request, "stormui/confirm_action.html", context, status=decision.status)


@never_cache
@login_required
def audit(request):
    if not request.user.is_staff:
        raise PermissionDenied("the audit log is for staff")
    entries = AuditEntry.objects.all()
    filters = {
        "storm": request.GET.get("storm", "").strip(),
        "outcome": request.GET.get("outcome", "").strip(),
    }
    if filters["storm"]:
        entries = entries.filter(storm_id=filters["storm"])
    if filters["outcome"] in Outcome.values:
        entries = entries.filter(outcome=filters["outcome"])
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    pending = ScheduledRemoval.objects.filter(done_at=None)
    return render(
        request,
        "stormui/audit.html",
        {
            "page": page,
            "entries": page.object_list,
            "filters": filters,
            "outcomes": Outcome.values,
            "pending": pending,
        },
    )


# -- Storm's API -------------------------------------------------------------------------------


def _operation(action: str, storm_id: str) -> dict:
    """Storm UI's answer to a topology operation."""
    return {"topologyOperation": action, "topologyId": storm_id, "status": "success"}


def api_action(view):
    """An action endpoint: POST only, JSON errors, and the CSRF check left to the view
    (session calls need the token; token calls need none)."""
    return csrf_exempt(json_errors(require_methods("POST")(view)))


@api_action
def api_activate(request, storm_id):
    return _api_action(request, storm_id, Action.ACTIVATE)


@api_action
def api_deactivate(request, storm_id):
    return _api_action(request, storm_id, Action.DEACTIVATE)


@api_action
def api_remove(request, storm_id):
    return _api_action(request, storm_id, Action.REMOVE)


@api_action
def api_kill(request, storm_id, wait_secs):
    return _api_action(request, storm_id, Action.KILL, wait_secs)


def _has_parameters(request) -> bool:
    """Whether the body carries anything an action would ignore (the CSRF field aside)."""
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields = set(request.POST) - {"csrfmiddlewaretoken"}
        return bool(fields or request.FILES)
    return bool(request.body.strip())


def _api_action(request, storm_id, action, wait_secs=None):
    remote = _remote_addr(request)
    try:
        authenticated = TokenAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        reason = f"bad API token: {exc.detail}"
        actions.refuse(None, action, storm_id, Via.API, remote, 401, reason)
        return json_error(401, reason, WWW_Authenticate="Token")
    by_token = authenticated is not None
    user = authenticated[0] if by_token else request.user
    if not user.is_authenticated:
        reason = "authentication required: log in, or send 'Authorization: Token <key>'"
        actions.refuse(user, action, storm_id, Via.API, remote, 401, reason)
        return json_error(401, reason, WWW_Authenticate="Token")
    if _has_parameters(request):
        reason = "API actions take an empty body"
        actions.refuse(user, action, storm_id, Via.API, remote, 400, reason)
        return json_error(400, reason)
    if not by_token and (reason := csrf_failure_reason(request)):
        reason = f"CSRF check failed: {reason}"
        actions.refuse(user, action, storm_id, Via.API, remote, 403, reason)
        return json_error(403, reason)
    if wait_secs is not None:
        try:
            wait_secs = int(wait_secs)
        except ValueError:
            wait_secs = -1  # refused below, with the allowed range
    result = actions.perform(user, action, storm_id, Via.API, remote, wait_secs=wait_secs)
    if not result.ok:
        return json_error(result.status, result.message)
    return JsonResponse(_operation(action, storm_id))
