"""Real servers for the live tests and benchmarks: daphne, Redis and the relay, as subprocesses.

Each is started on a free loopback port with its own temporary files, waited
for until it serves, and stopped (terminate, then kill) by :func:`stop`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# never through a proxy: everything here is on the loopback
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: what a server started here takes from the caller's environment; the rest is given
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
_shared_var: Path | None = None


def _var_dir(database) -> Path:
    """STORMUI_VAR_DIR for a server: the SQLite file's folder, else one for this process."""
    global _shared_var
    if "://" not in str(database):
        return Path(database).parent
    if _shared_var is None:
        _shared_var = Path(tempfile.mkdtemp(prefix="stormui-var-"))
        atexit.register(shutil.rmtree, _shared_var, True)
    return _shared_var


def server_env(zk_connect: str, zk_root: str, database: Path | str, **extra) -> dict:
    """The environment of a dashboard process reading ``zk_root`` on ``zk_connect``.

    ``database`` is a SQLite file, or a ``DATABASE_URL`` (``postgres://...``).
    """
    # nothing of the caller's environment beyond these (no STORMUI_*, DJANGO_*, DATABASE_URL)
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    env.update(
        STORMUI_DOTENV="off",
        STORMUI_VAR_DIR=str(_var_dir(database)),
        DJANGO_SETTINGS_MODULE="stormui.settings",
        STORMUI_ZK_SERVERS=zk_connect,
        STORMUI_ZK_ROOT=zk_root,
        STORMUI_STORE="zookeeper",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database if "://" in str(database) else f"sqlite:///{database}",
        DJANGO_DEBUG="false",
        PYTHONUNBUFFERED="1",
        # each cluster's daphnes elect their own leader
        STORMUI_ZK_DASHBOARD_ROOT=zk_root.rstrip("/") + "-dashboard",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )


def _popen_logged(args: list, log_path: Path, **kwargs) -> subprocess.Popen:
    """``Popen`` with stdout and stderr to ``log_path``: the child keeps the file open, this
    process closes its own copy at once (no file left open here per server started)."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, **kwargs)


def start_daphne(
    env: dict, folder: Path, port: int | None = None, name: str = "daphne", ready_secs: float = 60
):
    """daphne serving the dashboard on 127.0.0.1; returns ``(process, base_url)`` once it is
    ready: its ``/readyz`` says the cluster is read (pages answer at once, but say they are
    still reading it until then); it fails if that takes over ``ready_secs``."""
    port = port or free_port()
    proc = _popen_logged(
        [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "stormui.asgi:application"],
        folder / f"{name}.log",
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", proc, timeout=ready_secs)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def wait_http(url: str, proc=None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with _opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout}s")
        time.sleep(0.1)


def start_daphnes(env: dict, folder: Path, n: int) -> list:
    """``n`` daphnes started at once (named ``daphne-<i>``); ``[(process, base_url)]`` once
    each serves."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(start_daphne, env, folder, name=f"daphne-{i}") for i in range(n)]
        started = []
        try:
            for future in futures:
                started.append(future.result())
        except BaseException:
            for future in futures:
                if future.exception() is None:
                    stop(future.result()[0])
            raise
    return started


def leader_flag(url: str) -> float | None:
    """``stormui_leader`` from the /metrics of the daphne at ``url``; None if it does not
    answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with _opener.open(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stormui_leader":
                return sample.value
    raise RuntimeError(f"{url}/metrics has no stormui_leader")


def wait_leader(urls: list[str], timeout: float = 60, exclude: str | None = None) -> str:
    """The url of the daphne that leads, once one of ``urls`` (but ``exclude``) does."""
    deadline = time.monotonic() + timeout
    while True:
        for url in urls:
            if url != exclude and leader_flag(url) == 1:
                return url
        if time.monotonic() > deadline:
            raise RuntimeError(f"no daphne led within {timeout}s")
        time.sleep(0.05)


def start_relay(env: dict, folder: Path):
    """``manage.py relay`` (a candidate for leading that does not serve); returns the process
    once it stands."""
    log_path = folder / "relay.log"
    proc = _popen_logged([sys.executable, "manage.py", "relay"], log_path, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while b"relaying" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError("the relay did not start: " + log_path.read_text(errors="replace"))
        time.sleep(0.05)
    return proc


def start_redis(folder: Path, port: int | None = None, name: str = "redis"):
    """A throwaway redis-server on a loopback port (default a free one); returns
    ``(process, url)``. Its log is ``folder/<name>.log``."""
    server = shutil.which("redis-server")
    if server is None:
        raise FileNotFoundError("redis-server is not installed")
    port = port or free_port()
    data = Path(tempfile.mkdtemp(prefix="redis-", dir=folder))
    proc = _popen_logged(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(data)],
        folder / f"{name}.log",
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def stop(proc, timeout: float = 10) -> None:
    """Terminate ``proc`` (and kill it if it lingers)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def process_usage(pid: int) -> dict:
    """CPU seconds (user + system) and resident memory (bytes) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {"cpu_secs": cpu, "rss_bytes": rss}
