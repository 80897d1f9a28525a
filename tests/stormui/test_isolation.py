"""The suite is isolated from the developer's set-up: no .env under pytest, clean server
environments, and settings that write nothing into the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import live_servers

ROOT = Path(__file__).resolve().parents[2]

# a .env that would show if it were read: valid values, unlike every default
HOSTILE_DOTENV = """\
STORMUI_ZK_ROOT=/from-dotenv
STORMUI_LOGIN_REQUIRED=true
DJANGO_DEBUG=true
DJANGO_SECRET_KEY=from-dotenv
DATABASE_URL=sqlite:////nowhere/from-dotenv.sqlite3
"""

INNER_TEST = """\
from django.conf import settings


def test_the_dotenv_is_not_read():
    assert settings.STORMUI_ZK_ROOT == "/storm"
    assert settings.STORMUI_LOGIN_REQUIRED is False
    assert settings.DEBUG is False
    assert settings.SECRET_KEY != "from-dotenv"
    assert "from-dotenv" not in str(settings.DATABASES["default"]["NAME"])
"""

SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'root': s.STORMUI_ZK_ROOT, 'key': s.SECRET_KEY, "
    "'var': str(s.VAR_DIR), 'db': str(s.DATABASES['default']['NAME'])}))"
)


def outside_env(**overrides) -> dict:
    """This environment without pytest's marker and without any of the settings' variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTEST_VERSION"
        and not k.startswith(("STORMUI_", "DJANGO_"))
        and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(overrides)
    return env


def inside_env(**overrides) -> dict:
    """The same, as a process started by a test sees it: under pytest."""
    return outside_env(PYTEST_VERSION=os.environ["PYTEST_VERSION"], **overrides)


def settings_in(cwd: Path, env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS],
        cwd=cwd,
        env={**env, "DJANGO_SETTINGS_MODULE": "stormui.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def checkout_files() -> set[str]:
    """Where settings could write: the checkout's top level and var/, and the packages.

    (Not the data of a demo's ZooKeeper, which changes on its own under var/zookeeper.)
    """
    found = {p.name for p in ROOT.iterdir()}
    if (ROOT / "var").is_dir():
        found |= {f"var/{p.name}" for p in (ROOT / "var").iterdir()}
    for package in ("stormui", "clusterstate"):
        for folder, dirs, files in os.walk(ROOT / package):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found.update(os.path.relpath(os.path.join(folder, f), ROOT) for f in files)
    return found


def test_a_hostile_dotenv_is_not_read_under_pytest(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(HOSTILE_DOTENV)
    (work / "test_inner.py").write_text(INNER_TEST)
    # outside pytest the same .env is read: the file is one that would show
    outside = settings_in(work, outside_env())
    assert outside["root"] == "/from-dotenv" and outside["key"] == "from-dotenv"
    (work / "var").rmdir()  # the only thing that run made
    # pytest-django imports the settings before any conftest could step in
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["--ds", "stormui.settings", "--rootdir", str(work), "test_inner.py"],
        cwd=work,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    # and it wrote nothing: no var/, no secret key
    assert sorted(p.name for p in work.iterdir()) == [".env", "test_inner.py"]


def test_settings_under_pytest_write_nothing_into_the_checkout(tmp_path):
    before = checkout_files()
    var = tmp_path / "var"
    # under pytest, without STORMUI_VAR_DIR: nothing is written anywhere
    quiet = settings_in(ROOT, inside_env())
    assert quiet["var"] == str(ROOT / "var") and quiet["key"]
    # with a fresh STORMUI_VAR_DIR: the key goes there, and stays
    first = settings_in(ROOT, inside_env(STORMUI_VAR_DIR=str(var)))
    assert first["var"] == str(var) and first["db"] == str(var / "db.sqlite3")
    assert (var / "secret-key").read_text().strip() == first["key"]
    assert settings_in(ROOT, inside_env(STORMUI_VAR_DIR=str(var)))["key"] == first["key"]
    # a server's settings (no pytest marker) with STORMUI_VAR_DIR: the same
    served = settings_in(ROOT, outside_env(STORMUI_DOTENV="off", STORMUI_VAR_DIR=str(var)))
    assert served["key"] == first["key"]
    assert sorted(p.name for p in var.iterdir()) == ["secret-key"]
    assert checkout_files() == before


def test_var_dir_defaults_to_var_in_the_working_folder(tmp_path):
    shown = settings_in(tmp_path, outside_env(STORMUI_DOTENV="off"))
    assert shown["var"] == str(tmp_path / "var")
    assert shown["db"] == str(tmp_path / "var" / "db.sqlite3")
    assert (tmp_path / "var" / "secret-key").read_text().strip() == shown["key"]
    # relative paths are made absolute against the working folder
    shown = settings_in(tmp_path, outside_env(STORMUI_DOTENV="off", STORMUI_VAR_DIR="state"))
    assert shown["var"] == str(tmp_path / "state")


def test_servers_get_a_clean_environment(monkeypatch, tmp_path):
    for name, value in {
        "STORMUI_LOGIN_REQUIRED": "true",
        "STORMUI_MIRROR": "off",
        "DJANGO_DEBUG": "true",
        "DJANGO_SECRET_KEY": "mine",
        "DATABASE_URL": "postgres://me@elsewhere/db",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PYTEST_VERSION": "9",
        "SOMETHING_ELSE": "x",
    }.items():
        monkeypatch.setenv(name, value)
    env = live_servers.server_env("127.0.0.1:2181", "/t/x", tmp_path / "db.sqlite3", EXTRA="1")
    assert set(env) - set(live_servers.INHERITED) == {
        "STORMUI_DOTENV",
        "STORMUI_VAR_DIR",
        "DJANGO_SETTINGS_MODULE",
        "STORMUI_ZK_SERVERS",
        "STORMUI_ZK_ROOT",
        "STORMUI_ZK_DASHBOARD_ROOT",
        "STORMUI_STORE",
        "DJANGO_ALLOWED_HOSTS",
        "DATABASE_URL",
        "DJANGO_DEBUG",
        "PYTHONUNBUFFERED",
        "EXTRA",
    }
    assert env["STORMUI_DOTENV"] == "off" and env["STORMUI_VAR_DIR"] == str(tmp_path)
    assert env["DATABASE_URL"] == f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert env["DJANGO_DEBUG"] == "false" and env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize("name", ["STORMUI_DOTENV", "STORMUI_VAR_DIR"])
def test_a_bad_dotenv_or_var_dir_stops_start_up_naming_it(tmp_path, name):
    (tmp_path / "a-file").write_text("")
    bad = {"STORMUI_DOTENV": str(tmp_path / "missing.env"), "STORMUI_VAR_DIR": "a-file/var"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=tmp_path,
        env=outside_env(**{name: bad[name]}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and name in last, last
