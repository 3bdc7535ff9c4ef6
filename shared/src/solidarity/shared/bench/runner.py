"""The whole bench: a fresh stack for the raw limits, the burst and the fan-out, then another
for the burst with two instances; then the JSON, the markdown page and the chart."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from solidarity.shared.bench import phases, report
from solidarity.shared.bench.chart import write_chart
from solidarity.shared.bench.options import BenchOptions
from solidarity.shared.bench.phases import BenchError, Say
from solidarity.shared.bench.stack import BenchStack
from solidarity.shared.service import discover_services

T = TypeVar("T")

NEEDED = ("catalog", "registration", "notifications")


async def main_run(stack: BenchStack, options: BenchOptions, *, say: Say) -> dict[str, Any]:
    """Raw limits, then the burst (flood, then steady), then the fan-out, on one stack."""
    run = phases.new_run_tag()
    setup = await phases.prepare(stack, options, run=run, say=say)
    raw = await phases.measure_raw(setup, options, say=say)
    flood = range(options.flood_count)
    steady = range(flood.stop, options.registrations)
    async with phases.watching(setup, options.registrations) as watch:
        await phases.flood_and_drain(setup, watch, flood, options, say=say, label="flood")
        if len(steady):
            capacity = phases.sustainable_rate(watch.ledger, flood)
            watch.steady_capacity = capacity
            watch.steady_rate = options.steady_rate or max(
                1.0, options.steady_utilisation * capacity
            )
            await phases.flood_and_drain(
                setup, watch, steady, options, say=say, label="steady", rate=watch.steady_rate
            )
        burst = phases.burst_figures(watch, flood, steady, setup)
        burst["consumer_results"] = await phases.consumer_results(setup)
        if burst["lost"]:
            burst["unanswered"] = await phases.trace_lost(
                setup, watch, range(options.registrations), say=say
            )
        series: dict[str, Any] = dict(phases.series(watch.ledger))
        series["memory"] = phases.memory_series(watch.sampler, watch.ledger.origin)
        fanout = await phases.run_fanout(setup, watch, options, say=say) if options.fanout else None
    return {"raw": raw, "burst": burst, "series": series, "fanout": fanout}


async def scaling_run(stack: BenchStack, options: BenchOptions, *, say: Say) -> dict[str, Any]:
    setup = await phases.prepare(stack, options, run=phases.new_run_tag(), say=say)
    return await phases.run_scaling(setup, options, say=say)


def with_stack(
    options: BenchOptions,
    *,
    name: str,
    results_dir: Path,
    say: Say,
    extra_instances: tuple[str, ...] = (),
    work: Callable[[BenchStack], T],
) -> T:
    """Start a stack in a fresh folder, run `work` on it, stop it, remove the folder."""
    services = discover_services()
    missing = [s for s in NEEDED if s not in {spec.name for spec in services}]
    if missing:
        raise BenchError(f"the bench needs every service; not installed: {', '.join(missing)}")
    if options.data_dir is not None:
        data_dir = options.data_dir / name
        if data_dir.exists() and any(data_dir.iterdir()):
            raise BenchError(f"{data_dir} is not empty: the bench starts from an empty state")
    else:
        data_dir = Path(tempfile.mkdtemp(prefix=f"solidarity-bench-{name}-"))
    stack = BenchStack(
        data_dir=data_dir,
        services=services,
        profile=options.profile,
        profile_dir=results_dir,
        service_env=dict(options.service_env),
        on_step=lambda step: say(f"stack: {step}"),
    )
    try:
        stack.start()
        for service in extra_instances:
            say(f"stack: starting another {service} instance")
            stack.add_instance(service)
        return work(stack)
    finally:
        say("stack: stopping")
        stack.stop()
        if options.keep_data:
            say(f"stack data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def run_bench(
    options: BenchOptions, *, say: Say, command: str = "solidarity bench"
) -> dict[str, Any]:
    """Run every phase the options ask for and write the results; returns the results."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    results_dir = options.results_dir / started.strftime("%Y%m%dT%H%M%SZ")
    results_dir.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    say(f"results go to {results_dir}")
    main = with_stack(
        options,
        name="burst",
        results_dir=results_dir,
        say=say,
        work=lambda stack: asyncio.run(main_run(stack, options, say=say)),
    )
    scaling: dict[str, Any] | None = None
    if options.scaling:
        # What the first stack gave, in case the second one fails or is interrupted.
        early = report.assemble(
            raw=main["raw"],
            burst=main["burst"],
            fanout=main["fanout"],
            scaling=None,
            series=main["series"],
            meta={"command": command, "partial": "before the scaling phase"},
        )
        report.write_json(early, results_dir / "results.json")
        scaling = with_stack(
            options,
            name="scaling",
            results_dir=results_dir,
            say=say,
            extra_instances=("registration", "notifications"),
            work=lambda stack: asyncio.run(scaling_run(stack, options, say=say)),
        )
    meta = {
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - clock, 1),
        "cpus": os.cpu_count() or 0,
        "load_before": load_before,
        "load_after": _load(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "quick": options.quick,
        "mail_wait_s": options.mail_budget_s,
        "registrations": options.registrations,
        "seed": options.seed,
        "schools": options.schools,
        "partners": options.partners,
        "invitation_share": options.invitation_share,
        "steady_share": options.steady_share,
        "steady_utilisation": options.steady_utilisation,
        "profiled": list(options.profile),
        "service_env": dict(options.service_env),
        "hold_notifications": options.hold_notifications,
        "notes": list(options.notes),
    }
    results = report.assemble(
        raw=main["raw"],
        burst=main["burst"],
        fanout=main["fanout"],
        scaling=scaling,
        series=main["series"],
        meta=meta,
    )
    write_results(results, results_dir, options.json_path)
    return results


def write_results(results: dict[str, Any], results_dir: Path, json_path: Path | None) -> None:
    """results.json, results.md and chart.png in the results folder (and the JSON at
    `json_path` too, when given)."""
    report.write_json(results, results_dir / "results.json")
    if json_path is not None:
        report.write_json(results, json_path)
    write_chart(results, results_dir / "chart.png")
    (results_dir / "results.md").write_text(report.markdown(results, chart="chart.png"))


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"
