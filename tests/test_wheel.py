"""A wheel that works: built from the sources, installed (not editable) in a new virtualenv
outside the checkout, it migrates and serves the dashboard with its CSS, writing its state
into ``var/`` in the working folder and nothing into site-packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench import live_servers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
# what the wheel is built from: the checkout's sources, copied so the build leaves no
# build/ or egg-info behind in the checkout
SOURCES = ("pyproject.toml", "README.md", "clusterstate", "stormui")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def run(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def get(url: str):
    with _opener.open(url, timeout=30) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def files_under(folder: Path) -> set[str]:
    """Every file under ``folder`` but Python's byte-code caches."""
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A new virtualenv with the wheel installed: ``(venv, site_packages)``."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=junk)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src))
    (wheel,) = dist.glob("stormui-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if CONSTRAINTS.exists():
        pip += ["-c", str(CONSTRAINTS)]
    run(*pip, str(wheel))
    purelib = run(
        str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    ).stdout.strip()
    site = Path(purelib)
    assert (site / "stormui" / "templates" / "stormui" / "base.html").is_file()
    assert not (site / "stormui" / "settings.py").is_symlink()
    return venv, site


def test_the_installed_wheel_migrates_and_serves_pages_with_their_css(installed, tmp_path):
    venv, site = installed
    before = files_under(site)
    work = tmp_path / "work"
    work.mkdir()
    # a clean environment: nothing of the checkout's or the suite's (no PYTEST_VERSION)
    env = {k: v for k, v in os.environ.items() if k in live_servers.INHERITED}
    env.update(STORMUI_STORE="memory", DJANGO_ALLOWED_HOSTS="127.0.0.1", PYTHONUNBUFFERED="1")

    run(str(venv / "bin" / "stormui"), "migrate", "--noinput", cwd=work, env=env)
    assert "simulate" in run(str(venv / "bin" / "stormui"), "help", cwd=work, env=env).stdout
    var = work / "var"
    assert (var / "db.sqlite3").is_file() and (var / "secret-key").is_file()

    port = live_servers.free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "daphne.log", "wb") as log:
        proc = subprocess.Popen(
            [str(venv / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
            + ["stormui.asgi:application"],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            live_servers.wait_http(url + "/", proc, timeout=120)
        except RuntimeError:
            raise AssertionError((tmp_path / "daphne.log").read_text(errors="replace")) from None
        status, kind, body = get(url + "/")
        assert status == 200 and kind.startswith("text/html")
        page = body.decode()
        assert 'id="cluster-summary"' in page
        (css,) = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
        status, kind, body = get(url + css)
        assert status == 200 and kind.startswith("text/css") and b"--accent" in body
    finally:
        live_servers.stop(proc)

    # the state went into the working folder's var/, nothing into the installed package
    assert files_under(site) == before
    assert sorted(p.name for p in work.iterdir()) == ["var"]
    assert not list(site.glob("**/db.sqlite3")) and not list(site.glob("**/secret-key"))
