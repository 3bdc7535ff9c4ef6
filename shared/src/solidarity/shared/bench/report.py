"""A run's results: the JSON document, its targets (met or missed), a table and a markdown page."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from solidarity.shared.bench.raw import RawLimits

RSS_LIMIT_MB = 300.0
RSS_FLAT_MB = 15.0  # "not growing": the last quarter's peak within this of the first quarter's


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue, read from the results."""

    name: str
    wanted: str
    value: Callable[[dict[str, Any]], float]
    met: Callable[[float], bool]


def _get(path: str) -> Callable[[dict[str, Any]], float]:
    def read(results: dict[str, Any]) -> float:
        node: Any = results
        for part in path.split("."):
            node = node.get(part, 0.0) if isinstance(node, dict) else 0.0
        return float(node or 0.0)

    return read


def _largest_growth(results: dict[str, Any]) -> float:
    growth = results.get("burst", {}).get("rss_growth_mb", {})
    return max((float(v) for v in growth.values()), default=0.0)


TARGETS = (
    Target("ratio.registration", ">= 0.5", _get("ratio.registration"), lambda v: v >= 0.5),
    Target("ratio.notifications", ">= 0.5", _get("ratio.notifications"), lambda v: v >= 0.5),
    Target(
        "burst.outcome_latency_p99_s",
        "< 2 s",
        _get("burst.outcome_latency_p99_s"),
        lambda v: 0 < v < 2.0,
    ),
    Target(
        "burst.peak_rss_mb",
        f"< {RSS_LIMIT_MB:.0f} MB (every service)",
        _get("burst.peak_rss_mb"),
        lambda v: 0 < v < RSS_LIMIT_MB,
    ),
    Target(
        "burst.rss_growth_mb",
        f"<= {RSS_FLAT_MB:.0f} MB (not growing)",
        _largest_growth,
        lambda v: v <= RSS_FLAT_MB,
    ),
    Target("lost", "0", _get("lost"), lambda v: v == 0),
    Target("duplicated", "0", _get("duplicated"), lambda v: v == 0),
)


def assemble(
    *,
    raw: RawLimits | None,
    burst: dict[str, Any],
    fanout: dict[str, Any] | None,
    scaling: dict[str, Any] | None,
    series: dict[str, Any],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """The results document: the issue's keys (all numbers), the details, the targets."""
    raw_json = raw.as_json() if raw is not None else {}
    bare = raw_json.get("bare_pipeline_per_s", 0.0)
    smtp = raw_json.get("smtp_mails_per_s", 0.0)
    fan = fanout or {"invites_per_s": 0.0, "invites": 0, "missing": 0, "duplicated": 0}
    results: dict[str, Any] = {
        "raw": raw_json,
        "burst": burst,
        "fanout": fan,
        "scaling": scaling or {},
        "ratio": {
            "registration": round(burst["decided_per_s"] / bare, 3) if bare else 0.0,
            "notifications": round(burst["mails_per_s"] / smtp, 3) if smtp else 0.0,
        },
        "lost": burst["lost"] + (scaling or {}).get("lost", 0),
        "duplicated": burst["duplicated"]
        + fan.get("duplicated", 0)
        + (scaling or {}).get("duplicated", 0),
        "mails_missing": burst["mails_missing"]
        + fan.get("missing", 0)
        + (scaling or {}).get("mails_missing", 0),
        "series": series,
        "meta": meta,
    }
    results["targets"] = {
        target.name: {
            "value": target.value(results),
            "wanted": target.wanted,
            "met": target.met(target.value(results)),
        }
        for target in TARGETS
    }
    return results


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


# Tables ---------------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _seconds(value: float) -> str:
    return f"{value:,.3f} s" if value < 10 else f"{value:,.1f} s"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, what, figure) for every headline figure of a run."""
    raw, burst, fan, scaling = (
        results["raw"],
        results["burst"],
        results["fanout"],
        results["scaling"],
    )
    found: list[tuple[str, str, str]] = []
    if raw:
        found += [
            ("raw", "broker pipe (produce + consume)", _rate(raw["pipe_msgs_per_s"])),
            ("raw", "PostgreSQL batched inserts", f"{raw['pg_rows_per_s']:,.0f} rows/s"),
            (
                "raw",
                f"SMTP to the sink ({raw['smtp_connections']:.0f} connections)",
                f"{raw['smtp_mails_per_s']:,.0f} mails/s",
            ),
            ("raw", "bare pipeline", _rate(raw["bare_pipeline_per_s"])),
        ]
    found += [
        ("burst", "registrations", f"{burst['registrations']:,}"),
        ("burst", "decided (flood)", _rate(burst["decided_per_s"])),
        ("burst", "mails delivered (flood)", f"{burst['mails_per_s']:,.0f} mails/s"),
        (
            "burst",
            f"outcome latency p50 / p95 / p99 (steady, {burst['steady']['rate_per_s']:,.0f}/s)",
            " / ".join(_seconds(burst[f"outcome_latency_{p}_s"]) for p in ("p50", "p95", "p99")),
        ),
        (
            "burst",
            "mail latency p50 / p95 / p99 (steady)",
            " / ".join(_seconds(burst[f"mail_latency_{p}_s"]) for p in ("p50", "p95", "p99"))
            if burst["steady"]["mail_latency"].get("count")
            else "no steady mail in the sink yet",
        ),
        (
            "burst",
            "outcome latency p99 (flood: queueing)",
            _seconds(burst["flood"]["outcome_latency"]["p99_s"]),
        ),
        (
            "burst",
            "mail latency p99 (flood: queueing)",
            _seconds(burst["flood"]["mail_latency"]["p99_s"]),
        ),
    ]
    for name, value in sorted(burst.get("cpu_ms_per_submission", {}).items()):
        found.append(("cpu", f"{name}, per submission", f"{value:,.2f} ms"))
    for name, value in sorted(burst.get("cpu_ms_per_mail", {}).items()):
        found.append(("cpu", f"{name}, per mail", f"{value:,.2f} ms"))
    for name, value in sorted(burst["peak_rss_mb_by_process"].items()):
        found.append(("memory", f"peak RSS {name}", f"{value:,.0f} MB"))
    for name, value in sorted(burst["rss_growth_mb"].items()):
        found.append(("memory", f"RSS growth over the burst, {name}", f"{value:+,.1f} MB"))
    if fan.get("invites"):
        found += [
            ("fan-out", "invitations", f"{fan['invites']:,} of {fan['invitees']:,}"),
            ("fan-out", "until every invitation is in the sink", _seconds(fan["seconds_to_all"])),
            ("fan-out", "invitations", f"{fan['invites_per_s']:,.0f}/s"),
        ]
    if scaling:
        found += [
            ("scaling", "decided, 2 instances", _rate(scaling["decided_per_s"])),
            ("scaling", "mails, 2 instances", f"{scaling['mails_per_s']:,.0f} mails/s"),
        ]
        for service in ("registration", "notifications"):
            for row in scaling[f"{service}_instances"]:
                parts = ",".join(str(p) for p in row["partitions"]) or "-"
                found.append(
                    (
                        "scaling",
                        f"{row['instance']} (partitions {parts})",
                        f"{row['count']:,} at {row['per_s']:,.0f}/s",
                    )
                )
    found += [
        ("ratio", "registration (decided / bare)", f"{results['ratio']['registration']:.2f}"),
        ("ratio", "notifications (mails / SMTP)", f"{results['ratio']['notifications']:.2f}"),
        ("checks", "lost", f"{results['lost']:,}"),
        (
            "checks",
            "sent again after no answer",
            f"{results['burst'].get('resent_after_no_answer', 0):,}",
        ),
        ("checks", "duplicated", f"{results['duplicated']:,}"),
        (
            "checks",
            "mails called for and missing"
            if results["meta"].get("mail_wait_s") is None
            else f"mails not in the sink after {results['meta']['mail_wait_s']:.0f} s "
            "(not waited for)",
            f"{results['mails_missing']:,}",
        ),
    ]
    return found


def console_tables(results: dict[str, Any]) -> list[Table]:
    figures = Table(title="solidarity bench", title_justify="left")
    for column in ("", "what", "figure"):
        figures.add_column(column)
    for section, what, figure in rows(results):
        figures.add_row(section, what, figure)
    targets = Table(title="targets", title_justify="left")
    for column in ("target", "wanted", "measured", ""):
        targets.add_column(column)
    for name, target in results["targets"].items():
        mark = "[green]met[/green]" if target["met"] else "[red]missed[/red]"
        targets.add_row(name, target["wanted"], f"{target['value']:,.3f}", mark)
    return [figures, targets]


def markdown(results: dict[str, Any], *, chart: str | None = None) -> str:
    meta = results["meta"]
    lines = [
        f"# solidarity bench — {meta.get('started_at', '')}",
        "",
        f"`{meta.get('command', 'solidarity bench')}` on {meta.get('cpus', '?')} CPUs, "
        f"load average {meta.get('load_before', '?')} before and {meta.get('load_after', '?')} "
        f"after; {meta.get('seconds', 0):,.0f} s in all.",
        "",
        "| | what | figure |",
        "|---|---|---|",
    ]
    lines += [f"| {s} | {w} | {f} |" for s, w, f in rows(results)]
    lines += ["", "| target | wanted | measured | |", "|---|---|---|---|"]
    for name, target in results["targets"].items():
        verdict = "met" if target["met"] else "**missed**"
        lines.append(f"| {name} | {target['wanted']} | {target['value']:,.3f} | {verdict} |")
    if chart:
        lines += ["", f"![throughput]({chart})"]
    notes = meta.get("notes") or []
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"
