"""``python -m stormui``: the same as the ``stormui`` command."""

from stormui.cli import main

main()
