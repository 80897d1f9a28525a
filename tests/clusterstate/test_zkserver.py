"""The standalone ZooKeeper server used by tests and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clusterstate.zkserver import ZooKeeperServer, four_letter_word, is_ok, read_pidfile
from tests.helpers import WAIT

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "clusterstate.zkserver", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_restart_keeps_port_and_data(tmp_path, zk_server):
    from kazoo.client import KazooClient

    server = ZooKeeperServer(tmp_path / "zk")
    try:
        server.start()
        assert server.is_running()
        assert "Mode: standalone" in four_letter_word(
            server.host, server.port, "srvr", timeout=WAIT
        )
        address = server.connect_string
        client = KazooClient(address)
        client.start(timeout=WAIT)
        client.create("/kept", b"data")
        client.stop()
        client.close()

        server.restart()
        assert server.connect_string == address

        client = KazooClient(address)
        client.start(timeout=WAIT)
        assert client.get("/kept")[0] == b"data"
        client.stop()
        client.close()
    finally:
        server.stop()
    assert not server.is_running()
    assert not is_ok(server.host, server.port)
    server.stop()  # harmless twice


def test_cli_start_is_idempotent_status_and_stop(tmp_path, zk_server):
    pidfile = tmp_path / "zk.pid"
    started = cli("start", "--data-dir", str(tmp_path / "zk"), "--pidfile", str(pidfile))
    try:
        assert started.returncode == 0, started.stderr
        address = started.stdout.strip()
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1" and is_ok(host, int(port))  # outlived the CLI
        pid, recorded = read_pidfile(pidfile)
        assert recorded == address

        again = cli("start", "--data-dir", str(tmp_path / "zk"), "--pidfile", str(pidfile))
        assert again.returncode == 0 and again.stdout.strip() == address
        assert read_pidfile(pidfile)[0] == pid  # no second server

        status = cli("status", "--pidfile", str(pidfile))
        assert status.returncode == 0 and status.stdout.strip() == address
    finally:
        stopped = cli("stop", "--pidfile", str(pidfile))
    assert stopped.returncode == 0
    assert not is_ok(host, int(port))
    assert cli("status", "--pidfile", str(pidfile)).returncode == 1


def test_cli_exits_3_without_java(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no java on the PATH
    result = cli("start", "--data-dir", str(tmp_path / "zk"), env=env)
    assert result.returncode == 3
    assert "not installed" in result.stderr


def test_start_refuses_a_port_in_use(tmp_path, zk_server):
    port = int(zk_server.connect_string.rpartition(":")[2])
    with pytest.raises(RuntimeError, match="in use"):
        ZooKeeperServer(tmp_path / "zk", port=port).start()
    assert zk_server.is_running()
