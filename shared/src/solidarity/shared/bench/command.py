"""`solidarity bench`: the benchmark's command line (mounted by `solidarity.shared.cli.app`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def bench(
    registrations: Annotated[
        int,
        typer.Option(
            "--registrations",
            "-n",
            min=100,
            help="Submissions in the burst (flood, then a steady tail of 10%).",
        ),
    ] = 100_000,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="About 10,000 registrations, small raw samples, no fan-out or scaling, mail "
            "waited for only briefly: for CI, which checks only that nothing is lost or doubled.",
        ),
    ] = False,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", dir_okay=False, help="Also write the results JSON here."),
    ] = None,
    results_dir: Annotated[
        Path,
        typer.Option(
            "--results",
            file_okay=False,
            help="Folder for results.json, results.md, chart.png (one sub-folder per run).",
        ),
    ] = Path("bench-results"),
    fanout: Annotated[
        bool, typer.Option("--fanout/--no-fanout", help="Measure the webinar fan-out.")
    ] = True,
    scaling: Annotated[
        bool,
        typer.Option(
            "--scaling/--no-scaling",
            help="Run the burst again with two registration and notifications instances.",
        ),
    ] = True,
    scaling_registrations: Annotated[
        int | None,
        typer.Option("--scaling-registrations", min=100, help="Default: --registrations."),
    ] = None,
    steady_rate: Annotated[
        float | None,
        typer.Option(
            "--steady-rate",
            min=1,
            help="Submissions/s of the steady stage. Default: half of what the flood "
            "sustained (the lower of its decided/s and its decided-and-mailed/s).",
        ),
    ] = None,
    invitation_share: Annotated[
        float,
        typer.Option(
            "--invitation-share", min=0, max=1, help="Share of people who accept invitations."
        ),
    ] = 0.3,
    hold_notifications: Annotated[
        bool,
        typer.Option(
            "--hold-notifications",
            help="An experiment: suspend the notifications service while the flood is decided, "
            "to measure the registration service without it on the machine.",
        ),
    ] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            metavar="SERVICE",
            help="Run this service under pyinstrument (repeatable); its profile goes to the "
            "results folder.",
        ),
    ] = None,
    service_env: Annotated[
        list[str] | None,
        typer.Option(
            "--service-env",
            metavar="SOLIDARITY_NAME=VALUE",
            help="A setting for every service process, to try it (repeatable), e.g. "
            "SOLIDARITY_SENDER_BATCH_SIZE=200. Recorded in the results.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the made-up people.")] = 2023,
    stall_timeout: Annotated[
        float,
        typer.Option(
            "--stall-timeout",
            min=5,
            help="Give up a wait after this many seconds without progress.",
        ),
    ] = 120.0,
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="Keep the stacks' folders (logs, mail, data).")
    ] = False,
    mail_wait: Annotated[
        float | None,
        typer.Option(
            "--mail-wait",
            min=1,
            help="Wait at most this many seconds for the mail after a stage's answers, then go "
            "on (mail not yet in the sink is reported as not waited for, not as lost). For "
            "runs whose mail would take hours to drain, e.g. -n 1000000 --mail-wait 60. "
            "Default: until the mail settles.",
        ),
    ] = None,
) -> None:
    """Benchmark the platform on the embedded stack, against this machine's own limits.

    From an empty state: raw limits (broker pipe, PostgreSQL, SMTP, a bare pipeline), then a
    burst from three partners over 2,000 schools, a webinar fan-out, and the burst again with
    two instances of registration and notifications. Prints a table and the targets (met or
    missed), and writes JSON, markdown and a chart. Exits 1 if anything was lost or doubled.
    """
    from rich.console import Console

    from solidarity.shared.bench.options import BenchOptions
    from solidarity.shared.bench.phases import BenchError
    from solidarity.shared.bench.report import console_tables
    from solidarity.shared.bench.runner import run_bench
    from solidarity.shared.demo import DemoError
    from solidarity.shared.devstack.embedded import StackError
    from solidarity.shared.partners import PartnerError

    console = Console(highlight=False)
    settings: list[tuple[str, str]] = []
    for item in service_env or ():
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("SOLIDARITY_"):
            raise typer.BadParameter(f"--service-env takes SOLIDARITY_NAME=VALUE, not {item!r}")
        settings.append((name, value))
    values: dict[str, object] = {
        "service_env": tuple(settings),
        "hold_notifications": hold_notifications,
        "json_path": json_path,
        "results_dir": results_dir,
        "steady_rate": steady_rate,
        "invitation_share": invitation_share,
        "profile": tuple(profile or ()),
        "seed": seed,
        "keep_data": keep_data,
    }
    if quick:
        if mail_wait is not None:
            values["mail_budget_s"] = mail_wait
        options = BenchOptions.quick_run(**values)
    else:
        options = BenchOptions(
            registrations=registrations,
            fanout=fanout,
            scaling=scaling,
            scaling_registrations=scaling_registrations,
            stall_s=stall_timeout,
            mail_budget_s=mail_wait,
            **values,  # type: ignore[arg-type]
        )

    def say(line: str) -> None:
        console.print(f"· {line}", markup=False)

    command = shlex.join(["solidarity", *sys.argv[1:]])
    try:
        results = run_bench(options, say=say, command=command)
    except (BenchError, PartnerError, DemoError, StackError) as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(1) from exc
    for table in console_tables(results):
        console.print(table)
    if results["lost"] or results["duplicated"]:
        console.print(
            f"{results['lost']} lost, {results['duplicated']} duplicated", style="bold red"
        )
        raise typer.Exit(1)
