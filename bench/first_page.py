"""How soon a freshly started daphne answers its first page, and how soon it is synced.

    .venv/bin/python -m bench.first_page --tasks 20000
    .venv/bin/python -m bench.first_page --tasks 20000 --compare /path/to/another/checkout

Starts a ZooKeeper, writes a cluster (see :mod:`bench.common`, heartbeats present and not
rewritten), then starts daphne on it and times, from the moment its port accepts a
connection (listening):

- ``first page``: ``GET /`` answered, whatever it says (while the mirror's first read runs,
  the page saying how far it has got: 503 with ``Retry-After``);
- ``synced``: ``/readyz`` answers 200 (polled every 50 ms);
- ``real page``: the cluster's page (200) asked for right after.

``--compare DIR`` runs a daphne from another checkout of the project too (daphne imports
the app from its working folder), on the same cluster, right after: a before and after
measured in one run. Target: the first page within 1 s of listening, at any size.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import live_servers
from .common import ClusterSpec, HeartbeatWriters, machine_note, populate, start_zookeeper

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float = 600) -> tuple[int, str]:
    """``(status, body)`` of a GET, whatever the status."""
    try:
        with _opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def time_start(env: dict, folder: Path, checkout: Path, timeout: float = 900) -> dict:
    """Start daphne from ``checkout`` and time its first page, its sync and its real page."""
    port = live_servers.free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / f"daphne-{port}.log", "wb")
    proc = subprocess.Popen(
        [str(live_servers.VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
        + ["stormui.asgi:application"],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not listen; see {log.name}")
            time.sleep(0.005)
        t0 = time.perf_counter()
        status, body = get(url + "/", timeout)
        first = time.perf_counter() - t0
        first_kind = "syncing" if "reading the cluster" in body else f"page ({status})"
        deadline = time.monotonic() + timeout
        while get(url + "/readyz", 30)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne never got ready; see {log.name}")
            time.sleep(0.05)
        synced = time.perf_counter() - t0
        status, _body = get(url + "/", timeout)
        real = time.perf_counter() - t0
        if status != 200:
            raise RuntimeError(f"the cluster's page answered {status} once ready")
        return {"first_page": first, "first_kind": first_kind, "synced": synced, "real": real}
    finally:
        live_servers.stop(proc)
        log.close()


def run(tasks: int, compare: Path | None) -> list[tuple[str, dict]]:
    spec = ClusterSpec.for_tasks(tasks)
    server = start_zookeeper()
    folder = Path(tempfile.mkdtemp(prefix="stormui-first-page-"))
    try:
        root = f"/bench-first-{tasks}"
        started = time.perf_counter()
        nodes = populate(server.connect_string, root, spec)
        with HeartbeatWriters(server.connect_string, root, spec):
            print(f"# {spec.describe()}", flush=True)
            print(
                f"# {nodes:,} persistent nodes written in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            env = live_servers.server_env(server.connect_string, root, folder / "db.sqlite3")
            live_servers.migrate(env)
            results = []
            checkouts = [("this checkout", live_servers.ROOT)]
            if compare is not None:
                checkouts.append((str(compare), compare))
            for name, checkout in checkouts:
                result = time_start(env, folder, checkout)
                print(
                    f"{name}: first page {result['first_page'] * 1000:.0f} ms "
                    f"({result['first_kind']}), synced {result['synced']:.2f} s, "
                    f"real page {result['real']:.2f} s",
                    flush=True,
                )
                results.append((name, result))
            return results
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.first_page", description=__doc__)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--compare", type=Path, help="another checkout to time after this one")
    args = parser.parse_args(argv)
    print(f"# {machine_note()}", flush=True)
    results = run(args.tasks, args.compare)
    print("\n| daphne from | first page | what it said | synced | real page |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, r in results:
        print(
            f"| {name} | {r['first_page'] * 1000:.0f} ms | {r['first_kind']} "
            f"| {r['synced']:.2f} s | {r['real']:.2f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
