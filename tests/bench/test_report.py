"""The results document: the issue's keys, the ratios, the targets, the markdown page."""

from __future__ import annotations

from typing import Any

import pytest

from solidarity.shared.bench.profiles import package_of, summarise
from solidarity.shared.bench.raw import RawLimits
from solidarity.shared.bench.report import assemble, console_tables, markdown

pytestmark = pytest.mark.unit

RAW = RawLimits(
    pipe_msgs_per_s=20_000.0,
    pipe_produce_per_s=30_000.0,
    pipe_messages=1000,
    pg_rows_per_s=100_000.0,
    pg_rows=1000,
    smtp_mails_per_s=700.0,
    smtp_mails=100,
    smtp_connections=4,
    smtp_mail_bytes=7000,
    bare_pipeline_per_s=10_000.0,
    bare_messages=1000,
)


def _burst(**changes: Any) -> dict[str, Any]:
    latency = {"p50_s": 0.1, "p95_s": 0.2, "p99_s": 0.3, "max_s": 0.4, "count": 10}
    burst: dict[str, Any] = {
        "registrations": 1000,
        "decided_per_s": 6000.0,
        "mails_per_s": 350.0,
        "mails": 1100,
        "outcome_latency_p50_s": 0.1,
        "outcome_latency_p95_s": 0.5,
        "outcome_latency_p99_s": 1.5,
        "mail_latency_p50_s": 1.0,
        "mail_latency_p95_s": 2.0,
        "mail_latency_p99_s": 3.0,
        "flood": {"outcome_latency": latency, "mail_latency": latency, "mail_seconds": 3.0},
        "steady": {"rate_per_s": 3000.0, "outcome_latency": latency, "mail_latency": latency},
        "peak_rss_mb": 250.0,
        "peak_rss_mb_by_process": {"registration": 120.0, "notifications": 250.0},
        "rss_growth_mb": {"registration": 2.0, "notifications": 4.0},
        "lost": 0,
        "duplicated": 0,
        "mails_missing": 0,
    }
    burst.update(changes)
    return burst


def test_ratios_and_targets_are_computed_from_the_figures() -> None:
    results = assemble(
        raw=RAW, burst=_burst(), fanout=None, scaling=None, series={}, meta={"cpus": 2}
    )
    assert results["ratio"] == {"registration": 0.6, "notifications": 0.5}
    assert results["raw"]["bare_pipeline_per_s"] == 10_000.0
    assert results["fanout"]["invites_per_s"] == 0.0
    assert all(target["met"] for target in results["targets"].values())


def test_a_loss_a_slow_tail_and_a_growing_service_are_missed_targets() -> None:
    burst = _burst(
        lost=3,
        outcome_latency_p99_s=2.5,
        peak_rss_mb=320.0,
        rss_growth_mb={"registration": 40.0},
    )
    results = assemble(raw=RAW, burst=burst, fanout=None, scaling=None, series={}, meta={})
    missed = {name for name, target in results["targets"].items() if not target["met"]}
    assert missed == {
        "lost",
        "burst.outcome_latency_p99_s",
        "burst.peak_rss_mb",
        "burst.rss_growth_mb",
    }
    assert results["lost"] == 3


def test_the_page_and_the_tables_show_every_target() -> None:
    results = assemble(raw=RAW, burst=_burst(), fanout=None, scaling=None, series={}, meta={})
    page = markdown(results, chart="chart.png")
    for name in results["targets"]:
        assert f"| {name} |" in page
    assert "![throughput](chart.png)" in page
    assert len(console_tables(results)) == 2


def test_a_profile_is_summed_by_package_without_the_idle_loop() -> None:
    loop = "run\x00/x/python3.11/asyncio/base_events.py\x001"
    records = [
        ([loop, "epoll.poll\x00<built-in>\x000"], 3.0),
        ([loop, "render\x00/w/solidarity/notifications/adapters/rendering.py\x0010"], 1.0),
        ([loop, "fold\x00/x/python3.11/email/_header_value_parser.py\x0050"], 2.0),
    ]
    text = summarise(records)
    assert "busy 3.0 s, idle (waiting) 3.0 s" in text
    assert "stdlib:email" in text
    assert package_of("/v/lib/python3.11/site-packages/asyncpg/pool.py") == "asyncpg"


def test_mail_not_waited_for_is_not_called_missing() -> None:
    def page(meta: dict[str, Any]) -> str:
        burst = _burst(mails_missing=40)
        results = assemble(raw=RAW, burst=burst, fanout=None, scaling=None, series={}, meta=meta)
        return markdown(results, chart="chart.png")

    assert "| mails called for and missing | 40 |" in page({})
    waited = page({"mail_wait_s": 60.0})
    assert "mails not in the sink after 60 s (not waited for) | 40 |" in waited
    assert "called for and missing" not in waited
