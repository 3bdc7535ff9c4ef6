"""`solidarity partners ...`: create partner accounts and list them.

The API key and signing secret are printed once, at creation; only the API key's hash is
stored, and the signing secret is derived from SOLIDARITY_PARTNER_MASTER_KEY when needed. On
the local stack that key is the one `solidarity up` generated for its data folder (the CLI
adopts it at start, unless the environment sets its own).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, NoReturn

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from solidarity.registration.adapters.repository import SqlRepository
from solidarity.registration.adapters.unit_of_work import SqlUnitOfWork
from solidarity.registration.domain.partners import PartnerAccount, PartnerCredentials
from solidarity.registration.service import SERVICE
from solidarity.registration.service_layer.commands import CreatePartner
from solidarity.registration.service_layer.partners import create_partner
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import connect
from solidarity.shared.messaging.outbox import Outbox

app = typer.Typer(
    help="Partner accounts of the registration service (API keys and signing secrets).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="SOLIDARITY_DATABASE_URL",
        help="The registration database. Default: the running local stack's.",
    ),
]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="SOLIDARITY_DATA_DIR",
        file_okay=False,
        help="The local stack's folder (to find its database).",
    ),
]


def _fail(message: str) -> NoReturn:
    err_console.print(f"error: {message}", style="red", markup=False)
    raise typer.Exit(1)


def _dsn(dsn: str | None, data_dir: Path) -> str:
    if dsn:
        return dsn
    from solidarity.shared.devstack.stack import read_state

    state = read_state(data_dir)
    if state is not None and SERVICE.name in state.databases:
        return state.databases[SERVICE.name]
    _fail(
        f"no database address: no stack runs from {data_dir} and neither --dsn nor "
        "SOLIDARITY_DATABASE_URL is set"
    )


def _settings() -> RegistrationSettings:
    try:
        return RegistrationSettings()
    except ValidationError as exc:
        _fail(f"bad settings: {exc.errors(include_input=False)[0]['msg']}")


async def _create(
    dsn: str, name: str, campaigns: list[str], master_key: bytes
) -> PartnerCredentials:
    await migrate(dsn, service_package=SERVICE.package)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        outbox = Outbox(producer=SERVICE.name)
        return await create_partner(
            CreatePartner(name=name, campaigns=tuple(campaigns)),
            SqlUnitOfWork(outbox=outbox, pool=pool),
            master_key=master_key,
        )
    finally:
        await pool.close()


async def _list(dsn: str) -> list[PartnerAccount]:
    await migrate(dsn, service_package=SERVICE.package)
    conn = await connect(dsn)
    try:
        return await SqlRepository(conn).list_partners()
    finally:
        await conn.close()


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The partner's name, e.g. 'Riverside district'.")],
    campaign: Annotated[
        list[str],
        typer.Option("--campaign", "-c", help="A campaign slug it may register for (repeat)."),
    ],
    dsn: DsnOption = None,
    data_dir: DataDirOption = Path(".solidarity"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Create a partner; prints its API key and signing secret once (only a hash is kept)."""
    if not 1 <= len(name.strip()) <= 200:
        _fail("the name must be 1 to 200 characters")
    master_key = _settings().master_key()
    if master_key is None:
        _fail(
            "SOLIDARITY_PARTNER_MASTER_KEY is not set: it derives the partners' signing "
            "secrets, and must be the same as the registration service's. The local stack "
            "generates one per data folder (dev-secrets.json) and the CLI uses it when "
            "SOLIDARITY_DATA_DIR (or ./.solidarity) is that folder; elsewhere, set it"
        )
    credentials = asyncio.run(_create(_dsn(dsn, data_dir), name.strip(), campaign, master_key))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "partner_id": str(credentials.partner_id),
                    "name": name.strip(),
                    "campaigns": sorted(set(campaign)),
                    "api_key": credentials.api_key,
                    "signing_secret": credentials.signing_secret,
                }
            )
        )
        return
    table = Table(title=f"partner {name.strip()}", show_header=False)
    table.add_row("partner id", str(credentials.partner_id))
    table.add_row("campaigns", ", ".join(sorted(set(campaign))))
    table.add_row("API key", credentials.api_key)
    table.add_row("signing secret", credentials.signing_secret)
    console.print(table)
    console.print(
        "These are shown once: only a hash of the API key is stored, and the signing "
        "secret is derived from the master key. Hand them over safely."
    )


@app.command("list")
def list_partners(dsn: DsnOption = None, data_dir: DataDirOption = Path(".solidarity")) -> None:
    """List partners and their campaigns (never a key or a secret)."""
    partners = asyncio.run(_list(_dsn(dsn, data_dir)))
    table = Table("partner id", "name", "campaigns", "active")
    for partner in partners:
        table.add_row(
            str(partner.partner_id),
            partner.name,
            ", ".join(sorted(partner.campaigns)),
            "yes" if partner.active else "no",
        )
    console.print(table)
