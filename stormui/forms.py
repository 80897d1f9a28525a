"""The forms a request is read through: one place each, whichever view or socket reads it."""

from __future__ import annotations

from django import forms


class ConfirmForm(forms.Form):
    """A page action's confirmation: the storm's name, typed."""

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
