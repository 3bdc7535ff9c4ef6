"""The local stack's checks and its state file, without starting anything."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from rich.console import Console

from solidarity.shared.devstack.embedded import StackError, free_port
from solidarity.shared.devstack.stack import (
    Component,
    LocalStack,
    StackPorts,
    StackState,
    read_state,
    summary_table,
)
from solidarity.shared.service import ServiceSpec

pytestmark = pytest.mark.unit

CATALOG = ServiceSpec(
    name="catalog",
    package="solidarity.catalog",
    module="solidarity.catalog",
    database="catalog",
    default_http_port=8101,
)


def _ports(*, smtp: int | None = None) -> StackPorts:
    return StackPorts(
        postgres=free_port(),
        broker=free_port(),
        smtp=smtp if smtp is not None else free_port(),
        mail_web=free_port(),
    )


def _state(data_dir: Path, supervisor_pid: int) -> StackState:
    return StackState(
        started_at="2026-03-01T09:00:00+00:00",
        data_dir=str(data_dir),
        supervisor_pid=supervisor_pid,
        kafka_bootstrap="127.0.0.1:19092",
        postgres_dsn="postgresql://postgres@127.0.0.1:54329/postgres",
        smtp_host="127.0.0.1",
        smtp_port=1025,
        mail_url="http://127.0.0.1:8025",
        components=(
            Component("broker", "broker", 11, 19092, "127.0.0.1:19092"),
            Component(
                "catalog",
                "service",
                12,
                8101,
                "http://127.0.0.1:8101",
                health_url="http://127.0.0.1:8101/health",
            ),
        ),
        databases={"catalog": "postgresql://postgres@127.0.0.1:54329/catalog"},
    )


def test_the_state_file_round_trips(tmp_path: Path) -> None:
    state = _state(tmp_path, 42)
    (tmp_path / "stack.json").write_text(json.dumps(state.to_json()))

    assert read_state(tmp_path) == state
    assert read_state(tmp_path / "elsewhere") is None


def test_an_unreadable_state_file_is_a_stack_error(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{not json")

    with pytest.raises(StackError, match="unreadable"):
        read_state(tmp_path)


def test_a_taken_port_names_the_option_that_moves_it(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(data_dir=tmp_path, ports=_ports(smtp=port), services=[])

        with pytest.raises(StackError) as error:
            stack.preflight()

    assert str(port) in str(error.value)
    assert "--smtp-port" in str(error.value)


def test_a_service_port_clash_names_the_service_option(tmp_path: Path) -> None:
    ports = _ports()
    stack = LocalStack(
        data_dir=tmp_path,
        ports=StackPorts(
            postgres=ports.postgres,
            broker=ports.broker,
            smtp=ports.smtp,
            mail_web=ports.mail_web,
            services={"catalog": ports.broker},
        ),
        services=[CATALOG],
    )

    with pytest.raises(StackError, match="--service-port catalog=PORT"):
        stack.preflight()


def test_a_stack_already_running_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps(_state(tmp_path, os.getpid()).to_json()))
    stack = LocalStack(data_dir=tmp_path, ports=_ports(), services=[])

    with pytest.raises(StackError, match="already runs"):
        stack.preflight()


def test_the_summary_says_where_everything_is_and_that_the_broker_forgets(tmp_path: Path) -> None:
    console = Console(width=200, record=True)

    console.print(summary_table(_state(tmp_path, 1), [CATALOG]))
    text = console.export_text()

    assert "127.0.0.1:19092" in text
    assert "memory only" in text
    assert "http://127.0.0.1:8101/docs" in text
    assert "http://127.0.0.1:8101/health" in text
    assert "http://127.0.0.1:8025" in text
