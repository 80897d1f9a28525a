"""A throwaway PostgreSQL server, from Debian's package, for the suite's PostgreSQL lane.

:class:`PostgresServer` makes a new cluster with ``initdb`` in a folder of its
own, starts ``postgres`` on a free loopback port (and a unix socket in that
folder), waits until it takes connections, and at :meth:`~PostgresServer.stop`
shuts it down and removes the folder. PostgreSQL refuses to run as root, so
under root both run as the ``postgres`` user that Debian's package makes
(through ``setpriv``, like ``runuser -u postgres``), and the folder is that
user's. The server dies with the thread that started it, even if the test run
is killed.

The binaries are Debian's, in ``/usr/lib/postgresql/<version>/bin`` (the
newest version there; ``apt-get install postgresql`` puts them there).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PG_LIB = Path("/usr/lib/postgresql")
INSTALL_HINT = "apt-get install postgresql"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or, under root, the ``postgres`` user) are missing."""


def bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` and ``postgres``.

    :raises PostgresUnavailable: if there is none.
    """
    found = [
        path
        for path in PG_LIB.glob("*/bin")
        if re.fullmatch(r"\d+", path.parent.name)
        and (path / "initdb").is_file()
        and (path / "postgres").is_file()
    ]
    if not found:
        raise PostgresUnavailable(
            f"no PostgreSQL server in {PG_LIB}/<version>/bin ({INSTALL_HINT})"
        )
    return max(found, key=lambda path: int(path.parent.name))


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, listening on ``host:port`` only.

    :param parent: where to make the folder (default: the system's temporary folder;
        it must be reachable by the ``postgres`` user, which pytest's own
        temporary folders under root are not).
    :param host: the loopback address to listen on.
    """

    def __init__(self, parent=None, host: str = "127.0.0.1"):
        self.parent = parent
        self.host = host
        self.port: int | None = None
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None
        self._as_postgres: list[str] = []

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """A ``DATABASE_URL`` for ``database`` on this server, as the superuser (trusted)."""
        if self.port is None:
            raise RuntimeError("the server has no port until it is started")
        return f"postgres://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 60) -> PostgresServer:
        """Make the cluster, start the server and wait until it takes connections.

        :raises PostgresUnavailable: if PostgreSQL is not installed.
        :raises RuntimeError: if ``initdb`` fails or the server does not come up
            in time (the message ends with its log's tail).
        """
        if self.process is not None and self.process.poll() is None:
            return self
        binaries = bin_dir()
        self._prepare_folder()
        self._run(
            [
                str(binaries / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        for _attempt in range(3):  # the free port may be taken before postgres binds it
            self.port = _free_port(self.host)
            if self._launch(binaries, timeout):
                return self
        raise RuntimeError(
            f"PostgreSQL did not start on {self.host}:{self.port}; log tail:\n{self._log_tail()}"
        )

    def _prepare_folder(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="stormui-postgres-", dir=self.parent))
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SUPERUSER)
            except KeyError:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise PostgresUnavailable(
                    f"there is no {SUPERUSER!r} user to run PostgreSQL as ({INSTALL_HINT})"
                ) from None
            for path in (self.folder, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._as_postgres = [f"--reuid={SUPERUSER}", f"--regid={SUPERUSER}", "--init-groups"]
        self.log_path.touch()
        if self._as_postgres:
            os.chown(self.log_path, user.pw_uid, user.pw_gid)

    def _setpriv(self, *options: str) -> list[str]:
        """The ``setpriv`` prefix that runs a command as the ``postgres`` user under root."""
        options = (*self._as_postgres, *options)
        if not options:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            if self._as_postgres:
                raise PostgresUnavailable("setpriv is missing (apt-get install util-linux)")
            return []
        return [setpriv, *options, "--"]

    def _run(self, command: list[str], what: str) -> None:
        done = subprocess.run(
            [*self._setpriv(), *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.folder,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _launch(self, binaries: Path, timeout: float) -> bool:
        command = [
            str(binaries / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            # a throwaway cluster: durability buys nothing here
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "dynamic_shared_memory_type=mmap",
        ]
        with open(self.log_path, "ab") as log:
            # it dies with the thread that started it, even on SIGKILL
            self.process = subprocess.Popen(
                [*self._setpriv("--pdeathsig", "INT"), *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if self._accepts_connections():
                return True
            time.sleep(0.1)
        self._shutdown()
        return False

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str | None = None) -> str:
        """Make a new empty database; returns its ``DATABASE_URL``."""
        import psycopg
        from psycopg import sql

        name = name or f"stormui_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _shutdown(self, timeout: float = 20) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def halt(self) -> None:
        """Shut the server down (a fast shutdown: clients are cut off), keeping its data."""
        self._shutdown()

    def resume(self, timeout: float = 60) -> None:
        """Start a halted server again, on the same port, with the same data."""
        if not self._launch(bin_dir(), timeout):
            raise RuntimeError(f"PostgreSQL did not start again; log tail:\n{self._log_tail()}")

    def stop(self) -> None:
        """Shut the server down and remove its folder; harmless if not running."""
        self._shutdown()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
