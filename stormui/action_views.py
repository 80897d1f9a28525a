"""Admin actions over HTTP: the storm page's confirmation forms, Storm's API, the audit page.

The views authorise and answer; :mod:`stormui.actions` decides and audits.
They are ``csrf_exempt`` only so that the CSRF check can run here, where a
failure is audited like any other refusal: a request made with a session
needs the token all the same; one made with an API token needs none.
"""

from __future__ import annotations

from django import forms
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

from clusterstate import NotConnectedError
from clusterstate.paths import check_id

from . import actions
from .decorators import json_error, json_errors, require_methods
from .models import Action, AuditEntry, Outcome, ScheduledRemoval, Via
from .source import get_source

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


class ConfirmForm(forms.Form):
    confirm = forms.CharField(max_length=255, label="Type the storm's name to confirm")

    def __init__(self, *args, storm_name: str, storm_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.storm_name = storm_name
        self.storm_id = storm_id

    def clean_confirm(self):
        typed = self.cleaned_data["confirm"]
        # the page shows the name, or the id for a storm whose name is gone (inactive)
        if typed not in (self.storm_name, self.storm_id):
            raise forms.ValidationError(
                "That is not this storm's name; type %(name)s to confirm.",
                params={"name": self.storm_name},
            )
        return typed


def _storm_name(storm_id: str) -> tuple[str, bool]:
    """The storm's name as its page shows it, and whether the dashboard knows the storm."""
    try:
        view = get_source().storm_view(storm_id)
    except (NotConnectedError, ValueError):
        view = None
    return (view.name, True) if view is not None else (storm_id, False)


def _refused_page(request, storm_id, action, reason, status):
    context = {"action": action, "storm_id": storm_id, "refused": reason}
    return render(request, "stormui/confirm_action.html", context, status=status)


@never_cache
@csrf_exempt  # checked in _page_action, so that a failure is audited
def deactivate(request, storm_id):
    return _page_action(request, storm_id, Action.DEACTIVATE)


@never_cache
@csrf_exempt  # checked in _page_action, so that a failure is audited
def remove(request, storm_id):
    return _page_action(request, storm_id, Action.REMOVE)


def _page_action(request, storm_id, action):
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    posted = request.method == "POST"
    user, remote = request.user, _remote_addr(request)
    if not user.is_authenticated:
        if posted:
            actions.refuse(user, action, storm_id, Via.PAGE, remote, 401, "login required")
        # back to the confirmation form once logged in
        return redirect_to_login(request.path, settings.LOGIN_URL)
    if posted and (reason := csrf_failure_reason(request)):
        actions.refuse(
            user, action, storm_id, Via.PAGE, remote, 403, f"CSRF check failed: {reason}"
        )
        return get_callable(settings.CSRF_FAILURE_VIEW)(request, reason=reason)
    refusal = actions.refusal(user, action)
    if refusal is not None:
        status, reason = refusal
        if posted:
            actions.refuse(user, action, storm_id, Via.PAGE, remote, status, reason)
        return _refused_page(request, storm_id, action, reason, status)
    try:
        check_id(storm_id, "storm id")
    except ValueError:
        if posted:
            actions.perform(user, action, storm_id, Via.PAGE, remote)  # audited as not found
        raise Http404("no such storm") from None

    name, known = _storm_name(storm_id)
    if not posted:
        if not known:
            raise Http404("no such storm")
        form = ConfirmForm(storm_name=name, storm_id=storm_id)
        return _confirm_page(request, storm_id, name, action, form)

    form = ConfirmForm(request.POST, storm_name=name, storm_id=storm_id)
    if not form.is_valid():
        typed = request.POST.get("confirm", "")
        reason = f"the typed name {typed[:100]!r} did not match the storm's name"
        actions.refuse(user, action, storm_id, Via.PAGE, remote, 400, reason)
        return _confirm_page(request, storm_id, name, action, form, status=400)

    result = actions.perform(user, action, storm_id, Via.PAGE, remote)
    if result.ok:
        messages.success(request, f"{name}: {result.message}.")
    else:
        messages.error(request, f"{name}: {action} failed: {result.message}.")
    # a removed storm has no page left to go back to, nor has one that was not found
    gone = result.outcome == Outcome.NOT_FOUND or (result.ok and action == Action.REMOVE)
    return redirect("cluster") if gone else redirect("storm", storm_id)


def _confirm_page(request, storm_id, name, action, form, status=200):
    context = {
        "action": action,
        "storm_id": storm_id,
        "storm_name": name,
        "form": form,
        "post_url": reverse(f"storm-{action}", args=[storm_id]),
    }
    return render(request, "stormui/confirm_action.html", context, status=status)


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
