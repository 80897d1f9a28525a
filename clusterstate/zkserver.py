"""A real standalone ZooKeeper server, from Debian's package, for tests and demos.

:class:`ZooKeeperServer` starts ``org.apache.zookeeper.server.ZooKeeperServerMain``
on a loopback port with its ``zoo.cfg``, data and log in one folder, and waits
until it answers ``ruok``. The command line starts one detached, for a demo::

    python -m clusterstate.zkserver start --data-dir DIR [--port N] [--pidfile F]
    python -m clusterstate.zkserver status --pidfile F
    python -m clusterstate.zkserver stop --pidfile F

``start`` prints ``127.0.0.1:PORT`` and exits 0 while the server keeps running;
if the pidfile already names a live server, it just prints that one's address.
The pidfile holds the process id on its first line and the address on its
second. Exit status 3 means ZooKeeper (or Java) is not installed.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
ZOOKEEPER_CONF_DIR = Path("/etc/zookeeper/conf")
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
EXIT_UNAVAILABLE = 3


class ZooKeeperUnavailable(RuntimeError):
    """Java or the ZooKeeper jar is not installed."""


def java_command() -> list[str]:
    """The ``java`` command line prefix that runs ZooKeeper's classes.

    :raises ZooKeeperUnavailable: if ``java`` or the jar is missing.
    """
    java = shutil.which("java")
    if java is None:
        raise ZooKeeperUnavailable("java is not installed (apt-get install zookeeper)")
    if not ZOOKEEPER_JAR.is_file():
        raise ZooKeeperUnavailable(f"{ZOOKEEPER_JAR} not found (apt-get install zookeeper)")
    classpath = [str(ZOOKEEPER_JAR)]
    if ZOOKEEPER_CONF_DIR.is_dir():
        classpath.append(str(ZOOKEEPER_CONF_DIR))  # its log4j/logback configuration
    return [
        java,
        "-Xms32m",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",  # starts faster; plenty for tests
        "-Dzookeeper.admin.enableServer=false",
        "-cp",
        ":".join(classpath),
        MAIN_CLASS,
    ]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """True if something listens on ``host:port`` (connections in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def four_letter_word(host: str, port: int, word: str = "ruok", timeout: float = 2.0) -> str:
    """Send a four-letter command to ZooKeeper; its answer, ``""`` if none.

    :raises OSError: if nothing listens on ``host:port``.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def is_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if ZooKeeper on ``host:port`` answers ``imok`` to ``ruok``."""
    try:
        return four_letter_word(host, port, "ruok", timeout) == "imok"
    except OSError:
        return False


def is_serving(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if ZooKeeper on ``host:port`` answers ``ruok`` and serves requests.

    ``ruok`` answers ``imok`` a moment before the server takes requests;
    ``srvr`` tells the two apart.
    """
    try:
        return is_ok(host, port, timeout) and "Mode:" in four_letter_word(
            host, port, "srvr", timeout
        )
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class ZooKeeperServer:
    """One standalone ZooKeeper server keeping everything in ``data_dir``.

    :param data_dir: folder for ``zoo.cfg``, the data and ``zookeeper.log``;
        created if absent.
    :param port: client port; a free one is picked on the first start if ``None``.
    :param host: the loopback address to listen on.
    """

    def __init__(self, data_dir, port: int | None = None, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.process: subprocess.Popen | None = None
        self._atexit_registered = False

    @property
    def connect_string(self) -> str:
        """``host:port``, for a kazoo client or ``storm.zookeeper.servers``."""
        if self.port is None:
            raise RuntimeError("the server has no port until it is started")
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "zoo.cfg"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "zookeeper.log"

    def write_config(self) -> Path:
        """Write ``zoo.cfg`` for this server; returns its path."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    "tickTime=500",
                    "minSessionTimeout=1000",
                    "maxSessionTimeout=60000",
                    f"dataDir={self.data_dir / 'data'}",
                    f"clientPort={self.port}",
                    f"clientPortAddress={self.host}",
                    "maxClientCnxns=0",
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,wchs",
                    "preAllocSize=4096",
                    "snapCount=50000",
                    "forceSync=no",
                    "autopurge.purgeInterval=0",
                    "",
                ]
            )
        )
        return self.config_path

    def start(self, timeout: float = 30, *, detached: bool = False) -> ZooKeeperServer:
        """Start the server and wait until it answers ``ruok`` and serves requests.

        :param timeout: seconds to wait for ``imok``.
        :param detached: let the server outlive this Python process (the CLI);
            otherwise it is stopped when this process exits, and killed if the
            thread that started it dies first (so start it from a thread that
            lives as long as the server should).
        :returns: ``self``.
        :raises ZooKeeperUnavailable: if Java or ZooKeeper is not installed.
        :raises RuntimeError: if it exits or does not answer in time (the
            message ends with the log's tail).
        """
        if self.is_running():
            return self
        command = java_command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        picked = self.port is None
        if not picked and port_in_use(self.host, self.port):
            # another server there would answer ruok for us: refuse instead
            raise RuntimeError(f"port {self.port} on {self.host} is already in use")
        for _attempt in range(3 if picked else 1):
            if picked:
                self.port = free_port(self.host)
            self.write_config()
            if self._launch(command, timeout, detached):
                return self
            if not picked:
                break
        raise RuntimeError(
            f"ZooKeeper did not start on {self.connect_string}; log tail:\n{self._log_tail()}"
        )

    def _launch(self, command, timeout, detached) -> bool:
        setpriv = shutil.which("setpriv")
        if not detached and setpriv:
            # the server dies with the thread that started it, even on SIGKILL
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*command, str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        if not detached and not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if is_serving(self.host, self.port, timeout=1.0):
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def is_running(self) -> bool:
        """True if the server this object started is alive and answers ``ruok``."""
        if self.process is None or self.process.poll() is not None:
            return False
        return is_ok(self.host, self.port)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server (SIGTERM, then SIGKILL); harmless if not running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self, timeout: float = 30) -> ZooKeeperServer:
        """Stop and start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# -- command line ---------------------------------------------------------------------------


def read_pidfile(pidfile) -> tuple[int, str] | None:
    """``(pid, "host:port")`` from a pidfile written by ``start``, or ``None``."""
    try:
        lines = Path(pidfile).read_text().split()
        return int(lines[0]), lines[1]
    except (OSError, ValueError, IndexError):
        return None


def _live_server(pidfile) -> tuple[int, str] | None:
    entry = read_pidfile(pidfile)
    if entry is None:
        return None
    pid, address = entry
    host, _, port = address.rpartition(":")
    if _pid_alive(pid) and is_ok(host, int(port)):
        return entry
    return None


def _cmd_start(args) -> int:
    data_dir = Path(args.data_dir).resolve()
    pidfile = Path(args.pidfile) if args.pidfile else data_dir / "zookeeper.pid"
    live = _live_server(pidfile)
    if live is not None:
        print(live[1])
        return 0
    server = ZooKeeperServer(data_dir, port=args.port)
    try:
        server.start(timeout=args.timeout, detached=True)
    except ZooKeeperUnavailable as exc:
        print(f"ZooKeeper is not available: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{server.process.pid}\n{server.connect_string}\n")
    print(server.connect_string)
    return 0


def _cmd_stop(args) -> int:
    entry = read_pidfile(args.pidfile)
    if entry is None:
        print(f"no server recorded in {args.pidfile}", file=sys.stderr)
        return 0
    pid, address = entry
    if _pid_alive(pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if MAIN_CLASS.encode() in cmdline:  # never kill a recycled pid
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + args.timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    Path(args.pidfile).unlink(missing_ok=True)
    print(f"stopped {address}")
    return 0


def _cmd_status(args) -> int:
    live = _live_server(args.pidfile)
    if live is None:
        print("not running")
        return 1
    print(live[1])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterstate.zkserver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a detached server; print its address")
    start.add_argument("--data-dir", required=True)
    start.add_argument("--port", type=int, default=None)
    start.add_argument("--pidfile", default=None, help="default: DATA_DIR/zookeeper.pid")
    start.add_argument("--timeout", type=float, default=30)
    start.set_defaults(func=_cmd_start)
    stop = commands.add_parser("stop", help="stop the server named in the pidfile")
    stop.add_argument("--pidfile", required=True)
    stop.add_argument("--timeout", type=float, default=10)
    stop.set_defaults(func=_cmd_stop)
    status = commands.add_parser("status", help="print the address if running (exit 1 if not)")
    status.add_argument("--pidfile", required=True)
    status.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
