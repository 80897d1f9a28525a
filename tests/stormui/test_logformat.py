"""The log's lines (``STORMUI_LOG_FORMAT``, ``STORMUI_LOG_LEVEL``), as a fresh server
process configures them from its settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOG_SOME = """
import logging
from django.conf import settings
from django.utils.log import configure_logging
# what django.setup() does with the logs, without loading every app
configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
log = logging.getLogger("stormui.probe")
log.debug("a detail")
log.info("two\\nlines")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it failed")
logging.getLogger("kazoo.client").info("a connection state")
"""

RUNS = {
    "json": {"STORMUI_LOG_FORMAT": "json", "STORMUI_LOG_LEVEL": "debug"},
    "default": {},
}


@pytest.fixture(scope="module")
def logged() -> dict[str, list[str]]:
    """What each of :data:`RUNS` wrote, by name: the processes run side by side."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORMUI_", "DJANGO_"))}
    clean.update(DJANGO_SETTINGS_MODULE="stormui.settings", PYTHONPATH=str(ROOT))
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", LOG_SOME],
            cwd=ROOT,
            env={**clean, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, env in RUNS.items()
    }
    lines = {}
    for name, proc in runs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        lines[name] = stderr.splitlines()
    return lines


def test_json_lines_carry_time_level_logger_message_and_the_traceback(logged):
    every = [json.loads(line) for line in logged["json"]]  # every line is one object
    events = [e for e in every if e["logger"].startswith(("stormui.", "kazoo"))]
    assert [(e["level"], e["logger"], e["message"]) for e in events] == [
        ("DEBUG", "stormui.probe", "a detail"),
        ("INFO", "stormui.probe", "two\nlines"),
        ("ERROR", "stormui.probe", "it failed"),
    ]  # kazoo's INFO stays out, whatever the level
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", event["time"])
    assert "exc_info" not in events[0]
    assert events[2]["exc_info"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in events[2]["exc_info"]


def test_text_lines_by_default_at_info(logged):
    lines = logged["default"]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + r" INFO stormui\.probe two", lines[0]), lines
    assert lines[1] == "lines"
    assert re.fullmatch(stamp + r" ERROR stormui\.probe it failed", lines[2]), lines
    assert "a detail" not in "\n".join(lines)  # INFO by default
    assert "ZeroDivisionError" in lines[-1]
