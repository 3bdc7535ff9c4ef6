"""`solidarity contracts`: regenerate and check the JSON Schema snapshots of every event."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solidarity.shared.contracts.schemas import (
    SNAPSHOT_DIR,
    BreakingChangeError,
    snapshot_report,
    write_snapshots,
)

app = typer.Typer(
    help="Event contracts: JSON Schema snapshots of every event and the breaking-change check.",
    no_args_is_help=True,
)

DirectoryOption = Annotated[
    Path,
    typer.Option(
        "--directory",
        file_okay=False,
        help="Where the snapshots live (default: the ones committed inside the package).",
    ),
]


@app.command()
def snapshot(
    directory: DirectoryOption = SNAPSHOT_DIR,
    allow_breaking: Annotated[
        bool,
        typer.Option(
            "--allow-breaking",
            help="Overwrite snapshots even when the change is breaking. Only for a contract "
            "nobody produces or consumes yet; otherwise add a new V<n> event class.",
        ),
    ] = False,
) -> None:
    """Regenerate the snapshot of every event and the envelope, and list the files that changed.

    Run it after a compatible change (a new optional field, a new enum value) and commit the
    result. It refuses to record a breaking change unless told to with --allow-breaking.
    """
    try:
        changed = write_snapshots(directory, allow_breaking=allow_breaking)
    except BreakingChangeError as exc:
        typer.echo("refusing to regenerate: these changes are breaking", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        typer.echo("add a new V<n> event class instead, or pass --allow-breaking", err=True)
        raise typer.Exit(code=1) from None
    if not changed:
        typer.echo(f"snapshots up to date in {_shown(directory)}")
        return
    for path in changed:
        typer.echo(f"wrote {_shown(path)}")
    typer.echo(f"{len(changed)} snapshot(s) changed; commit them with the model change")


@app.command()
def check(directory: DirectoryOption = SNAPSHOT_DIR) -> None:
    """Compare every event's schema with its snapshot; exit 1 on any problem.

    Breaking changes, missing snapshots and snapshots without a model are errors; a
    compatible change only needs `solidarity contracts snapshot` and a commit.
    """
    report = snapshot_report(directory)
    problems = report.problems()
    if not problems:
        typer.echo(f"all snapshots match in {_shown(directory)}")
        return
    for problem in problems:
        typer.echo(problem, err=True)
    breaking = len(report.missing) + len(report.breaking) + len(report.orphaned)
    typer.echo(
        f"{breaking} contract problem(s), {len(report.outdated)} snapshot(s) needing regenerating",
        err=True,
    )
    raise typer.Exit(code=1)


def _shown(path: Path) -> Path:
    """A path relative to the working directory when it is below it, for shorter output."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path
