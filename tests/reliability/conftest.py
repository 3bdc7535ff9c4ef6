"""Scenario 12, as a guard on every reliability test: its logs (the in-process services'
output and the log files of the service processes it ran) hold no email address or name that
the scenarios used. A leak fails the test that caused it. Fixtures only: nothing imports this."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.reliability import logscan, platform
from tests.reliability.figures import record, time_factor


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A scenario run bigger (`SOLIDARITY_RELIABILITY_SCALE`) gets proportionally longer than
    the default per-test timeout before pytest-timeout stops it."""
    factor = time_factor()
    if factor <= 1:
        return
    default = float(config.getini("timeout") or 0)
    for item in items:
        if item.get_closest_marker("reliability") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(default * factor))


@pytest.fixture(scope="session")
def log_scans() -> Iterator[dict[str, logscan.Scan]]:
    scans: dict[str, logscan.Scan] = {}
    yield scans
    total = logscan.Scan()
    for one in scans.values():
        total.add(one)
    record(
        "12",
        "logs of every reliability test scanned for the emails and names used",
        outcome="passed" if not total.leaks else "failed",
        tests=len(scans),
        lines=total.lines,
        personal_strings=len(platform.PERSONAL_DATA),
        breaches=len(total.leaks),
    )


@pytest.fixture(autouse=True)
def personal_data_stays_out_of_logs(
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    log_scans: dict[str, logscan.Scan],
) -> Iterator[None]:
    logs_before = len(platform.SERVICE_LOGS)
    yield
    out, err = capfd.readouterr()
    if request.config.getoption("capture") != "no":
        sys.stdout.write(out)  # give the output back to pytest's capture and its report
        sys.stderr.write(err)
    texts = [err] + [
        path.read_text(errors="replace")
        for path in platform.SERVICE_LOGS[logs_before:]
        if path.exists()
    ]
    found = logscan.scan(texts, platform.PERSONAL_DATA)
    log_scans[request.node.nodeid] = found
    if found.leaks:
        pytest.fail(
            f"{len(found.leaks)} log line(s) hold personal data, e.g. {found.leaks[0]}",
            pytrace=False,
        )
