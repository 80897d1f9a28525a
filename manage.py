#!/usr/bin/env python
"""Django's manage.py for a checkout; an installed stormui has the ``stormui`` command."""

import sys

from stormui.cli import main

if __name__ == "__main__":
    main(sys.argv)
