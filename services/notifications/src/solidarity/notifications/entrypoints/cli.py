"""`solidarity notifications ...`: partner webhooks and the delivery ledger, for operators."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from solidarity.notifications.adapters import operations
from solidarity.notifications.service import SERVICE
from solidarity.shared.db.pool import Connection

T = TypeVar("T")

app = typer.Typer(
    help="The notifications service: partner webhooks and the delivery ledger.",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(help="Partners that receive signed webhooks.", no_args_is_help=True)
deliveries_app = typer.Typer(help="The delivery ledger and send queue.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(deliveries_app, name="deliveries")

console = Console(highlight=False)


def _table(*columns: str) -> Table:
    """A table whose first column (an id to copy) is never wrapped or cut."""
    table = Table()
    table.add_column(columns[0], no_wrap=True, min_width=36)
    for column in columns[1:]:
        table.add_column(column, overflow="fold")
    return table


DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="SOLIDARITY_DATABASE_URL",
        help="The notifications database. Default: the running local stack's.",
    ),
]
DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", envvar="SOLIDARITY_DATA_DIR", file_okay=False),
]


def _dsn(dsn: str | None, data_dir: Path) -> str:
    if dsn:
        return dsn
    from solidarity.shared.db.pool import with_database
    from solidarity.shared.devstack.stack import read_state

    state = read_state(data_dir)
    if state is None:
        raise typer.BadParameter(
            f"no stack runs from {data_dir}; give --dsn or SOLIDARITY_DATABASE_URL"
        )
    return state.databases.get(SERVICE.name) or with_database(state.postgres_dsn, SERVICE.database)


def _run(dsn: str, work: Callable[[Connection], Awaitable[T]]) -> T:
    from solidarity.shared.db.pool import connect

    async def go() -> T:
        conn = await connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


@webhooks_app.command("add")
def webhooks_add(
    partner: Annotated[uuid.UUID, typer.Option("--partner", help="The partner's id.")],
    url: Annotated[str, typer.Option("--url", help="Where to POST (https in production).")],
    dsn: DsnOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Send a partner signed webhooks of its submissions' outcomes; prints the secret once."""
    if not url.startswith(("https://", "http://")):
        raise typer.BadParameter("the URL must be http(s)")
    secret = _run(_dsn(dsn, data_dir), lambda c: operations.add_webhook(c, partner, url))
    console.print(f"webhooks on for partner {partner} -> {url}")
    console.print(f"signing secret (shown once): {secret}")


@webhooks_app.command("list")
def webhooks_list(dsn: DsnOption = None, data_dir: DataDirOption = Path(".solidarity")) -> None:
    """The partners that receive webhooks (never their secrets)."""
    table = _table("partner", "url", "active", "since")
    for r in _run(_dsn(dsn, data_dir), operations.list_webhooks):
        table.add_row(str(r["partner_id"]), r["url"], str(r["active"]), str(r["created_at"]))
    console.print(table)


@webhooks_app.command("disable")
def webhooks_disable(
    partner: Annotated[uuid.UUID, typer.Option("--partner")],
    dsn: DsnOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Stop webhooks to a partner (queued ones are not sent)."""
    done = _run(_dsn(dsn, data_dir), lambda c: operations.disable_webhook(c, partner))
    console.print(f"webhooks off for partner {partner}" if done else "no such partner endpoint")


@deliveries_app.command("stats")
def deliveries_stats(dsn: DsnOption = None, data_dir: DataDirOption = Path(".solidarity")) -> None:
    """How many deliveries are in each state, by kind."""
    table = Table("kind", "state", "count")
    for r in _run(_dsn(dsn, data_dir), operations.delivery_stats):
        table.add_row(r["kind"], r["state"], str(r["n"]))
    console.print(table)


@deliveries_app.command("in-doubt")
def deliveries_in_doubt(
    dsn: DsnOption = None, data_dir: DataDirOption = Path(".solidarity")
) -> None:
    """Deliveries whose outcome is unknown (connection lost after the message data)."""
    table = _table("delivery", "kind", "subject", "attempts", "claimed", "why")
    for r in _run(_dsn(dsn, data_dir), operations.in_doubt):
        table.add_row(
            str(r["delivery_id"]),
            r["kind"],
            r["subject_ref"],
            str(r["attempts"]),
            str(r["claimed_at"]),
            r["last_error"] or "",
        )
    console.print(table)


@deliveries_app.command("resolve")
def deliveries_resolve(
    delivery: Annotated[uuid.UUID, typer.Argument(help="The delivery id (its Message-ID).")],
    outcome: Annotated[
        str, typer.Option("--as", help="sent: it arrived; resend: it did not, send it again.")
    ],
    dsn: DsnOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Settle one delivery in doubt by hand, after checking the mail server's logs."""
    if outcome not in ("sent", "resend"):
        raise typer.BadParameter("--as sent or --as resend")
    done = _run(
        _dsn(dsn, data_dir),
        lambda c: operations.resolve(c, delivery, arrived=outcome == "sent"),
    )
    console.print("settled" if done else "no delivery in doubt has that id")
