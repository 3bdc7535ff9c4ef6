"""`solidarity up` for real: it starts, reports, stops on SIGTERM or Ctrl-C and leaves nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from solidarity.shared.cli.app import app
from solidarity.shared.devstack.embedded import StackError, free_port, port_is_free
from solidarity.shared.devstack.stack import LocalStack, StackPorts, pid_alive, read_state
from solidarity.shared.service import ServiceSpec, discover_services
from tests.integration.shared.devstack.fake_service.__main__ import EXIT_AT_START

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
FAKE_MODULE = "tests.integration.shared.devstack.fake_service"
CLI = [sys.executable, "-m", "solidarity.shared.cli.app"]


def _free_ports() -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    postgres, broker, smtp, mail = sorted(ports)
    return {"postgres": postgres, "broker": broker, "smtp": smtp, "mail": mail}


def _port_args(ports: dict[str, int]) -> list[str]:
    return [
        "--postgres-port",
        str(ports["postgres"]),
        "--broker-port",
        str(ports["broker"]),
        "--smtp-port",
        str(ports["smtp"]),
        "--mail-port",
        str(ports["mail"]),
    ]


def _service_port_args() -> list[str]:
    """Every installed service on a free port, so a running stack elsewhere does not clash."""
    args: list[str] = []
    for spec in discover_services():
        args += ["--service-port", f"{spec.name}={free_port()}"]
    return args


def _wait_for_state(process: subprocess.Popen[bytes], data_dir: Path, out: Path) -> None:
    deadline = time.monotonic() + 60
    while not (data_dir / "stack.json").exists():
        if process.poll() is not None:
            pytest.fail(f"`solidarity up` exited {process.returncode}: {out.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"`solidarity up` was not ready in 60 s: {out.read_text()}")
        time.sleep(0.1)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_up_runs_until_signalled_then_leaves_no_process(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data_dir = tmp_path / "stack"
    out = tmp_path / "up.log"
    with out.open("wb") as log:
        process = subprocess.Popen(
            [
                *CLI,
                "up",
                "--no-demo",
                "--data-dir",
                str(data_dir),
                *_port_args(_free_ports()),
                *_service_port_args(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_state(process, data_dir, out)
        state = read_state(data_dir)
        assert state is not None
        assert state.supervisor_pid == process.pid
        installed = {s.name for s in discover_services()}
        assert {c.name for c in state.components} == {"postgres", "broker", "mailsink"} | installed
        status = subprocess.run(
            [*CLI, "status", "--data-dir", str(data_dir)], capture_output=True, timeout=30
        )
        assert status.returncode == 0, status.stdout + status.stderr
        pids = [state.supervisor_pid, *(c.pid for c in state.components)]

        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0, out.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not (data_dir / "stack.json").exists()
    printed = out.read_text()
    assert "keeps no data" in printed or "memory only" in printed
    assert "stopped" in printed
    after = subprocess.run([*CLI, "status", "--data-dir", str(data_dir)], capture_output=True)
    assert after.returncode == 1


def test_a_taken_port_is_one_line_that_names_it(tmp_path: Path) -> None:
    ports = _free_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", ports["broker"]))
        taken.listen()
        result = subprocess.run(
            [*CLI, "up", "--data-dir", str(tmp_path / "stack"), *_port_args(ports)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(ports["broker"]) in lines[0]
    assert "--broker-port" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert port_is_free("127.0.0.1", ports["postgres"])  # nothing was started


def _fake_service(port: int) -> ServiceSpec:
    return ServiceSpec(
        name="fake",
        package=FAKE_MODULE,
        module=FAKE_MODULE,
        database="fake_service",
        default_http_port=port,
    )


def _stack(tmp_path: Path, spec: ServiceSpec) -> LocalStack:
    ports = _free_ports()
    return LocalStack(
        data_dir=tmp_path / "stack",
        ports=StackPorts(
            postgres=ports["postgres"],
            broker=ports["broker"],
            smtp=ports["smtp"],
            mail_web=ports["mail"],
        ),
        services=[spec],
        service_timeout_s=30,
    )


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


def test_a_service_gets_its_database_topics_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    spec = _fake_service(free_port())
    stack = _stack(tmp_path, spec)
    try:
        state = stack.start()
        service = state.component("fake")
        assert service is not None
        assert service.health_url is not None
        settings = httpx.get(service.health_url, timeout=5).json()
        assert settings["SOLIDARITY_DATABASE_URL"] == state.databases["fake"]
        assert settings["SOLIDARITY_DATABASE_URL"].endswith("/fake_service")
        assert settings["SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS"] == state.kafka_bootstrap
        assert settings["SOLIDARITY_KAFKA_ENABLE_IDEMPOTENCE"] == "false"
        assert settings["SOLIDARITY_HTTP_PORT"] == str(spec.default_http_port)
        assert settings["SOLIDARITY_SMTP_PORT"] == str(state.smtp_port)
        assert settings["SOLIDARITY_LOG_FORMAT"] == "console"
        assert {"outbox", "inbox", "fake_things"} <= asyncio.run(_tables(state.databases["fake"]))
        assert (tmp_path / "stack" / "logs" / "fake.log").exists()
        on_disk = json.loads((tmp_path / "stack" / "stack.json").read_text())
        assert on_disk["components"][-1]["url"] == f"http://127.0.0.1:{spec.default_http_port}"

        runner = CliRunner()
        data_dir = ["--data-dir", str(tmp_path / "stack")]
        assert runner.invoke(app, ["status", *data_dir]).exit_code == 0
        os.kill(service.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(service.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        down = runner.invoke(app, ["status", *data_dir])
        assert down.exit_code == 1
        assert [p.name for p in stack.exited()] == ["fake"]
        pids = [c.pid for c in state.components]
    finally:
        stack.stop()

    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not (tmp_path / "stack" / "stack.json").exists()


def test_a_service_that_dies_at_start_stops_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv(EXIT_AT_START, "3")
    stack = _stack(tmp_path, _fake_service(free_port()))

    with pytest.raises(StackError, match=r"fake exited with code 3 .*fake\.log"):
        stack.start()

    assert port_is_free("127.0.0.1", stack.ports.postgres)
    assert port_is_free("127.0.0.1", stack.ports.broker)
    assert port_is_free("127.0.0.1", stack.ports.mail_web)
    assert not (tmp_path / "stack" / "stack.json").exists()
