"""The local stack behind `solidarity up`: PostgreSQL, the broker, the mail sink and every service.

Everything lives under one data folder (`.solidarity/` by default): PostgreSQL's files, the
mail sink's messages, one log per process in `logs/`, and `stack.json`, which says what runs
where for `solidarity status` and the other commands. Processes are started from the main
thread (they die with it) and stopped in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs in the dev group yet
from rich.table import Table

from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import ensure_database, with_database
from solidarity.shared.devstack.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    ManagedProcess,
    StackError,
    broker_binary,
    port_is_free,
    postgres_bin_dir,
    spawn,
    start_broker,
    start_postgres,
)
from solidarity.shared.messaging.kafka import create_topics
from solidarity.shared.service import ServiceSpec, load_dev_secrets

DEFAULT_DATA_DIR = Path(".solidarity")
STATE_FILE = "stack.json"
MAILSINK_MODULE = "solidarity.shared.devstack.mailsink"

# The option of `solidarity up` that moves each fixed port, for error messages.
PORT_OPTIONS = {
    "PostgreSQL": "--postgres-port",
    "the broker": "--broker-port",
    "the mail sink (SMTP)": "--smtp-port",
    "the mail sink (web)": "--mail-port",
}


@dataclass(frozen=True, slots=True)
class StackPorts:
    """Where each part of the stack listens; services default to their ServiceSpec port."""

    postgres: int = 54329
    broker: int = 19092
    smtp: int = 1025
    mail_web: int = 8025
    services: Mapping[str, int] = field(default_factory=dict)

    def for_service(self, spec: ServiceSpec) -> int:
        return self.services.get(spec.name, spec.default_http_port)


@dataclass(frozen=True, slots=True)
class Component:
    """One process the stack started, as recorded in stack.json."""

    name: str
    kind: str  # "postgres", "broker", "mailsink", "service"
    pid: int
    port: int
    url: str
    health_url: str | None = None
    log: str | None = None


@dataclass(frozen=True, slots=True)
class StackState:
    """What runs where: written to stack.json once everything answers."""

    started_at: str
    data_dir: str
    supervisor_pid: int
    kafka_bootstrap: str
    postgres_dsn: str
    smtp_host: str
    smtp_port: int
    mail_url: str
    components: tuple[Component, ...]
    databases: Mapping[str, str] = field(default_factory=dict)  # service name -> DSN

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["components"] = [asdict(c) for c in self.components]
        data["databases"] = dict(self.databases)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackState:
        return cls(
            started_at=str(data["started_at"]),
            data_dir=str(data["data_dir"]),
            supervisor_pid=int(data["supervisor_pid"]),
            kafka_bootstrap=str(data["kafka_bootstrap"]),
            postgres_dsn=str(data["postgres_dsn"]),
            smtp_host=str(data["smtp_host"]),
            smtp_port=int(data["smtp_port"]),
            mail_url=str(data["mail_url"]),
            components=tuple(Component(**c) for c in data["components"]),
            databases=dict(data.get("databases", {})),
        )

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def read_state(data_dir: Path) -> StackState | None:
    """The running stack's state, or None when no stack.json is there (or it is unreadable)."""
    path = state_path(data_dir)
    try:
        return StackState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"{path} is unreadable ({exc}); remove it if no stack runs") from exc


def pid_alive(pid: int) -> bool:
    """True for a running process (a zombie counts as gone)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


StepCallback = Callable[[str], None]


class LocalStack:
    """Starts the whole platform on loopback and stops it again, leaving no process behind."""

    def __init__(
        self,
        *,
        data_dir: Path,
        ports: StackPorts,
        services: Sequence[ServiceSpec],
        host: str = "127.0.0.1",
        service_timeout_s: float = 60.0,
        on_step: StepCallback | None = None,
        load_demo: bool = True,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.ports = ports
        self.services = list(services)
        self.host = host
        self.service_timeout_s = service_timeout_s
        self.load_demo = load_demo
        self._on_step = on_step or (lambda _: None)
        self._started: list[ManagedProcess] = []
        self._reported_exits: set[str] = set()
        self.state: StackState | None = None

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    # Checks --------------------------------------------------------------------------------

    def planned_ports(self) -> list[tuple[str, int, str]]:
        """(what, port, option that moves it) for everything that will listen."""
        planned = [
            ("PostgreSQL", self.ports.postgres, PORT_OPTIONS["PostgreSQL"]),
            ("the broker", self.ports.broker, PORT_OPTIONS["the broker"]),
            ("the mail sink (SMTP)", self.ports.smtp, PORT_OPTIONS["the mail sink (SMTP)"]),
            ("the mail sink (web)", self.ports.mail_web, PORT_OPTIONS["the mail sink (web)"]),
        ]
        for spec in self.services:
            planned.append(
                (
                    f"the {spec.name} service",
                    self.ports.for_service(spec),
                    f"--service-port {spec.name}=PORT",
                )
            )
        return planned

    def preflight(self) -> None:
        """Fail before starting anything: a stack already running, a taken port, no binary."""
        existing = read_state(self.data_dir)
        if existing is not None and pid_alive(existing.supervisor_pid):
            raise StackError(
                f"a stack already runs from {self.data_dir} (pid {existing.supervisor_pid}): "
                "stop it first (Ctrl-C in its terminal)"
            )
        seen: dict[int, str] = {}
        for what, port, option in self.planned_ports():
            if not 0 < port < 65536:
                raise StackError(f"port {port} for {what} is not a valid port: fix {option}")
            if port in seen:
                raise StackError(
                    f"port {port} is given to both {seen[port]} and {what}: "
                    f"choose another with {option}"
                )
            seen[port] = what
            if not port_is_free(self.host, port):
                raise StackError(
                    f"port {port} on {self.host} is taken, so {what} cannot start there: "
                    f"stop whatever uses it or choose another with {option}"
                )
        postgres_bin_dir()
        broker_binary()

    # Start -----------------------------------------------------------------------------------

    def start(self) -> StackState:
        """Start everything in order; on any failure, stop what started and raise."""
        self.preflight()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        state_path(self.data_dir).unlink(missing_ok=True)
        try:
            return self._start()
        except Exception:
            # A signal (KeyboardInterrupt) is left to the caller, who stops the stack itself.
            self.stop()
            raise

    def _start(self) -> StackState:
        self._on_step("starting PostgreSQL")
        postgres = start_postgres(self.data_dir / "postgres", port=self.ports.postgres)
        self._started.append(postgres.process)
        self._on_step("starting the broker")
        broker = start_broker(self.logs_dir, port=self.ports.broker)
        self._started.append(broker.process)

        self._on_step("creating databases, topics and tables")
        databases = asyncio.run(self._prepare(postgres, broker))

        self._on_step("starting the mail sink")
        mail_url = f"http://{self.host}:{self.ports.mail_web}"
        mailsink = spawn(
            "mailsink",
            [
                sys.executable,
                "-m",
                MAILSINK_MODULE,
                "--host",
                self.host,
                "--smtp-port",
                str(self.ports.smtp),
                "--http-port",
                str(self.ports.mail_web),
                "--dir",
                str(self.data_dir / "mail"),
            ],
            log_path=self.logs_dir / "mailsink.log",
            env=self._child_env({}),
        )
        self._started.append(mailsink)
        self._wait_healthy(mailsink, f"{mail_url}/health", timeout_s=30)

        components = [
            Component(
                name="postgres",
                kind="postgres",
                pid=postgres.process.pid,
                port=postgres.port,
                url=postgres.dsn(),
                log=str(self.data_dir / "postgres" / "postgres.log"),
            ),
            Component(
                name="broker",
                kind="broker",
                pid=broker.process.pid,
                port=broker.port,
                url=broker.bootstrap_servers,
                log=str(self.logs_dir / "broker.log"),
            ),
            Component(
                name="mailsink",
                kind="mailsink",
                pid=mailsink.pid,
                port=self.ports.mail_web,
                url=mail_url,
                health_url=f"{mail_url}/health",
                log=str(self.logs_dir / "mailsink.log"),
            ),
        ]
        for spec in self.services:
            components.append(self._start_service(spec, broker, databases[spec.name]))
        if self.load_demo:
            for spec in self.services:
                if spec.demo_command:
                    self._run_demo(spec, broker, databases[spec.name])

        self.state = StackState(
            started_at=datetime.now(UTC).isoformat(),
            data_dir=str(self.data_dir),
            supervisor_pid=os.getpid(),
            kafka_bootstrap=broker.bootstrap_servers,
            postgres_dsn=postgres.dsn(),
            smtp_host=self.host,
            smtp_port=self.ports.smtp,
            mail_url=mail_url,
            components=tuple(components),
            databases=databases,
        )
        self._write_state(self.state)
        return self.state

    async def _prepare(self, postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> dict[str, str]:
        admin_dsn = postgres.dsn()
        databases: dict[str, str] = {}
        for spec in self.services:
            await ensure_database(admin_dsn, spec.database)
            databases[spec.name] = with_database(admin_dsn, spec.database)
        await create_topics(broker.bootstrap_servers, TOPICS)
        for spec in self.services:
            self._on_step(f"migrating {spec.name}")
            await migrate(databases[spec.name], service_package=spec.package)
        return databases

    def _start_service(self, spec: ServiceSpec, broker: EmbeddedBroker, dsn: str) -> Component:
        self._on_step(f"starting {spec.name}")
        port = self.ports.for_service(spec)
        base_url = f"http://{self.host}:{port}"
        log_path = self.logs_dir / f"{spec.name}.log"
        env = self._child_env(
            {
                "SOLIDARITY_DATABASE_URL": dsn,
                "SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                # The embedded broker fails InitProducerId: no idempotent producers on it.
                "SOLIDARITY_KAFKA_ENABLE_IDEMPOTENCE": "false",
                # A leader's LeaveGroup mid-rebalance strands its group on it (bug J).
                "SOLIDARITY_KAFKA_LEAVE_GROUP_ON_STOP": "false",
                "SOLIDARITY_KAFKA_TOPIC_PREFIX": "",
                "SOLIDARITY_HTTP_HOST": self.host,
                "SOLIDARITY_HTTP_PORT": str(port),
                "SOLIDARITY_SMTP_HOST": self.host,
                "SOLIDARITY_SMTP_PORT": str(self.ports.smtp),
                "SOLIDARITY_LOG_FORMAT": "console",
                # Development defaults (documented dev-only secrets) are allowed here only.
                "SOLIDARITY_ENVIRONMENT": "development",
                "SOLIDARITY_PUBLIC_BASE_URL": base_url,
                "SOLIDARITY_MAILBOX_API_URL": f"http://{self.host}:{self.ports.mail_web}",
                # Mail in doubt (connection lost after DATA) is settled by asking the sink.
                "SOLIDARITY_IN_DOUBT_POLICY": "mailbox",
            }
        )
        process = spawn(spec.name, [sys.executable, "-m", spec.module], log_path=log_path, env=env)
        self._started.append(process)
        health_url = f"{base_url}{spec.health_path}"
        self._wait_healthy(process, health_url, timeout_s=self.service_timeout_s)
        return Component(
            name=spec.name,
            kind="service",
            pid=process.pid,
            port=port,
            url=base_url,
            health_url=health_url,
            log=str(log_path),
        )

    def _run_demo(self, spec: ServiceSpec, broker: EmbeddedBroker, dsn: str) -> None:
        self._on_step(f"loading {spec.name} demo data")
        result = subprocess.run(  # noqa: S603 - the command comes from an installed ServiceSpec
            [sys.executable, "-m", "solidarity.shared.cli.app", *spec.demo_command],
            env=self._child_env(
                {
                    "SOLIDARITY_DATABASE_URL": dsn,
                    "SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                    "SOLIDARITY_KAFKA_TOPIC_PREFIX": "",
                    "SOLIDARITY_DATA_DIR": str(self.data_dir),
                }
            ),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"loading {spec.name}'s demo data failed (exit {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip().splitlines()[-1:]}"
            )

    def _child_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        wanted = tuple(name for spec in self.services for name in spec.dev_secrets)
        for name, value in load_dev_secrets(self.data_dir, wanted).items():
            env.setdefault(name, value)  # a secret set by the person wins
        env.update(extra)
        return env

    def _wait_healthy(self, process: ManagedProcess, url: str, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not process.alive():
                    raise StackError(
                        f"{process.name} exited with code {process.process.returncode} while "
                        f"starting: see {process.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{process.name} did not answer {url} within {timeout_s:.0f} s: "
                        f"see {process.log_path}"
                    )
                time.sleep(0.1)

    def _write_state(self, state: StackState) -> None:
        path = state_path(self.data_dir)
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(state.to_json(), indent=2))
        partial.replace(path)

    # Run and stop ----------------------------------------------------------------------------

    def exited(self) -> list[ManagedProcess]:
        """Children that stopped on their own since the last call (each reported once)."""
        gone = [p for p in self._started if not p.alive() and p.name not in self._reported_exits]
        self._reported_exits.update(p.name for p in gone)
        return gone

    def stop(self) -> None:
        """Stop every started process, last started first, and forget stack.json."""
        while self._started:
            self._started.pop().stop()
        path = state_path(self.data_dir)
        current = read_state_quietly(self.data_dir)
        if current is None or current.supervisor_pid == os.getpid():
            path.unlink(missing_ok=True)
        self.state = None


def read_state_quietly(data_dir: Path) -> StackState | None:
    try:
        return read_state(data_dir)
    except StackError:
        return None


def summary_table(state: StackState, services: Sequence[ServiceSpec]) -> Table:
    """Where everything is, for a person."""
    table = Table(title="Solidarity local stack", title_justify="left", show_lines=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("where", overflow="fold")  # addresses are copied: never cut them
    table.add_column("notes", style="dim")
    table.add_row(
        "broker",
        state.kafka_bootstrap,
        "memory only: keeps no data across restarts (then `solidarity outbox replay`)",
    )
    table.add_row("PostgreSQL", state.postgres_dsn, f"data in {state.data_dir}/postgres")
    table.add_row("mail (web)", state.mail_url, "every mail sent, kept for reading")
    table.add_row("mail (SMTP)", f"{state.smtp_host}:{state.smtp_port}", "")
    by_name = {s.name: s for s in services}
    for component in state.components:
        if component.kind != "service":
            continue
        spec = by_name.get(component.name)
        health = component.health_url or ""
        ready = f"{component.url}{spec.ready_path}" if spec is not None else ""
        table.add_row(
            component.name,
            f"{component.url}/docs",
            f"health {health}  ready {ready}  db {state.databases.get(component.name, '')}",
        )
    if not any(c.kind == "service" for c in state.components):
        table.add_row("services", "none installed", "nothing registers `solidarity.services` yet")
    table.add_row("logs", f"{state.data_dir}/logs", "one file per process")
    return table
