"""What the storm page may offer: ``{% storm_actions storm as actions %}``."""

from django import template
from django.conf import settings

from stormui.actions import may
from stormui.models import Action

register = template.Library()


@register.simple_tag(takes_context=True)
def storm_actions(context, storm) -> dict:
    """Which action forms to show for ``storm`` to the current user: none when read-only."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if settings.STORMUI_READ_ONLY or storm is None:
        return {"deactivate": False, "remove": False, "any": False}
    offer = {
        # an inactive storm has nothing left to deactivate
        "deactivate": storm.status == "ACTIVE" and may(user, Action.DEACTIVATE),
        "remove": may(user, Action.REMOVE),
    }
    return {**offer, "any": any(offer.values())}
