"""What the storm page may offer: ``{% storm_actions storm as offer %}``."""

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse

from stormui.actions import may
from stormui.forms import DEFAULT_KILL_WAIT_SECS, MAX_KILL_WAIT_SECS
from stormui.models import Action

register = template.Library()

NOTHING = {"activate": None, "deactivate": None, "kill": None, "remove": None, "any": False}


@register.simple_tag(takes_context=True)
def storm_actions(context, storm) -> dict:
    """The URLs of the action forms to show for ``storm`` to the current user (``None`` for
    those not to show): none when read-only."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if settings.STORMUI_READ_ONLY or storm is None:
        return NOTHING
    offer = {
        # only an inactive storm can be activated (one whose base node cannot be read is not
        # known to be inactive), only an active one deactivated
        "activate": storm.status == "INACTIVE"
        and not storm.unreadable
        and may(user, Action.ACTIVATE),
        "deactivate": storm.status == "ACTIVE" and may(user, Action.DEACTIVATE),
        "kill": may(user, Action.KILL),
        "remove": may(user, Action.REMOVE),
    }
    try:
        urls = {
            action: reverse(f"storm-{action}", args=[storm.id]) if shown else None
            for action, shown in offer.items()
        }
    except NoReverseMatch:  # the action URLs are not wired into this site
        return NOTHING
    return {
        **urls,
        "any": any(urls.values()),
        "max_wait": MAX_KILL_WAIT_SECS,
        "default_wait": DEFAULT_KILL_WAIT_SECS,
    }
