"""The ``stormui`` command: ``manage.py`` for an installed stormui.

``stormui migrate``, ``stormui simulate``, ``stormui runserver``, ``stormui
createsuperuser`` ... run Django's management commands with stormui's
settings; state goes to ``STORMUI_VAR_DIR`` (default ``var/`` here).
"""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv if argv is None else argv)


if __name__ == "__main__":
    main()
