"""``python -m stormui``: the same as the ``stormui`` command."""

import sys

from stormui.cli import main

main(["python -m stormui", *sys.argv[1:]])
