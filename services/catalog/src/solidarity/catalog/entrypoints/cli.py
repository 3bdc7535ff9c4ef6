"""`solidarity catalog ...`: load a campaign file, list the demo files, republish everything."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from solidarity.catalog.domain.errors import CatalogError
from solidarity.catalog.service import SERVICE

console = Console(highlight=False)

app = typer.Typer(
    help="The catalog: load a campaign from a YAML file, list the demo campaigns, republish.",
    no_args_is_help=True,
)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="SOLIDARITY_DATABASE_URL",
        help="The catalog database's DSN. Default: the running local stack's catalog database.",
    ),
]
TopicPrefixOption = Annotated[
    str,
    typer.Option(
        "--topic-prefix",
        envvar="SOLIDARITY_KAFKA_TOPIC_PREFIX",
        help="The topic prefix the catalog service runs with (default: none).",
    ),
]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="SOLIDARITY_DATA_DIR",
        file_okay=False,
        help="The local stack's folder (where stack.json says where the database is).",
    ),
]


def _fail(message: str) -> NoReturn:
    from solidarity.shared.cli.app import CliError

    raise CliError(message)


def _catalog_dsn(dsn: str | None, data_dir: Path) -> str:
    if dsn:
        return dsn
    from solidarity.shared.db.pool import with_database
    from solidarity.shared.devstack.stack import read_state

    state = read_state(data_dir)
    if state is None:
        _fail(
            f"no database address: no stack runs from {data_dir} (start one with "
            "`solidarity up`) and neither --dsn nor SOLIDARITY_DATABASE_URL is set"
        )
    return state.databases.get(SERVICE.name) or with_database(state.postgres_dsn, SERVICE.database)


@app.command("load")
def load(
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="The campaign's YAML file."),
    ] = None,
    demo: Annotated[
        str | None,
        typer.Option("--demo", help="Load a demo campaign by name instead (see `demos`)."),
    ] = None,
    dsn: DsnOption = None,
    topic_prefix: TopicPrefixOption = "",
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Load a whole campaign from one YAML file; loading it again announces only what changed.

    The events wait in the catalog's outbox; the running catalog service publishes them.
    """
    from solidarity.catalog.bootstrap import load_campaign_file
    from solidarity.catalog.demos import demo_file

    if (file is None) == (demo is None):
        _fail("give either a FILE or --demo NAME")
    path = file if file is not None else demo_file(str(demo))
    target = _catalog_dsn(dsn, data_dir)
    try:
        report = asyncio.run(load_campaign_file(path, target, topic_prefix=topic_prefix))
    except CatalogError as exc:
        _fail(f"{exc.code}: {exc.message}")
    if not report.changes:
        console.print(f"[bold]{report.slug}[/bold]: nothing changed, no events")
        return
    table = Table(title=f"{report.slug}", title_justify="left")
    for column in ("what", "key", "change"):
        table.add_column(column)
    for change in report.changes:
        table.add_row(change.kind, change.key, change.what)
    console.print(table)
    console.print(f"{report.events} event(s) in the outbox, published by the catalog service")


@app.command("demos")
def demos() -> None:
    """List the demo campaign files (built from the seed documents)."""
    from solidarity.catalog.demos import DEFAULT_DEMO, demo_files

    for name, path in demo_files().items():
        marker = " (default)" if name == DEFAULT_DEMO else ""
        console.print(f"[bold]{name}[/bold]{marker}  {path}")


@app.command("republish")
def republish(
    campaign: Annotated[
        list[str] | None,
        typer.Option("--campaign", help="Only this campaign's slug (repeatable)."),
    ] = None,
    dsn: DsnOption = None,
    topic_prefix: TopicPrefixOption = "",
    data_dir: DataDirOption = Path(".solidarity"),
) -> None:
    """Re-emit the current state of everything as events, at each item's current revision.

    For a new consumer or an emptied broker: a consumer that has a revision already treats
    the event as a no-op. Drafts stay private.
    """
    from solidarity.catalog.bootstrap import republish_catalog

    target = _catalog_dsn(dsn, data_dir)
    try:
        count = asyncio.run(
            republish_catalog(
                target, campaign_slugs=tuple(campaign or ()), topic_prefix=topic_prefix
            )
        )
    except CatalogError as exc:
        _fail(f"{exc.code}: {exc.message}")
    console.print(f"{count} event(s) in the outbox, published by the catalog service")
