"""The `solidarity` command's shape: help everywhere, plugins, option parsing, one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from solidarity.shared.cli.app import (
    CliError,
    _parse_service_ports,
    _parse_since,
    app,
    load_plugins,
    run,
)
from solidarity.shared.devstack.embedded import free_port

pytestmark = pytest.mark.unit

plugin_app = typer.Typer(help="A plugin for the tests.")


@plugin_app.command()
def hello() -> None:
    """Say hello."""
    typer.echo("hello from the plugin")


not_a_typer = object()


def _commands(command: Any, path: str = "solidarity") -> list[tuple[str, Any]]:
    found = [(path, command)]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        found += _commands(sub, f"{path} {name}")
    return found


def test_every_command_and_option_has_help() -> None:
    missing: list[str] = []
    for path, command in _commands(typer.main.get_command(app)):
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if param.name != "help" and not (getattr(param, "help", None) or "").strip():
                missing.append(f"{path} {param.name}")

    assert missing == []


def test_the_expected_commands_are_there() -> None:
    paths = {path for path, _ in _commands(typer.main.get_command(app))}

    assert {
        "solidarity up",
        "solidarity status",
        "solidarity migrate",
        "solidarity mail list",
        "solidarity mail show",
        "solidarity dlq list",
        "solidarity dlq show",
        "solidarity dlq redrive",
        "solidarity topics create",
        "solidarity outbox replay",
        "solidarity contracts check",
        "solidarity contracts snapshot",
    } <= paths


def _entry(name: str, attribute: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:{attribute}", group="solidarity.cli")


def test_plugins_mount_under_their_entry_point_name_and_bad_ones_are_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = typer.Typer()

    @root.command()
    def noop() -> None:
        """Keep typer from collapsing the group."""

    mounted = load_plugins(
        root,
        [
            _entry("catalog", "plugin_app"),
            _entry("broken", "does_not_exist"),
            _entry("weird", "not_a_typer"),
            _entry("dlq", "plugin_app"),
        ],
    )
    again = load_plugins(root, [_entry("catalog", "plugin_app")])

    assert mounted == ["catalog"]
    assert again == []
    warnings = capsys.readouterr().err
    assert "broken" in warnings
    assert "weird" in warnings
    assert "dlq" in warnings
    result = CliRunner().invoke(root, ["catalog", "hello"])
    assert result.exit_code == 0
    assert "hello from the plugin" in result.output


def test_service_ports_parse_and_reject_nonsense() -> None:
    assert _parse_service_ports(["catalog=8101", "registration=8102"]) == {
        "catalog": 8101,
        "registration": 8102,
    }
    with pytest.raises(CliError, match="NAME=PORT"):
        _parse_service_ports(["catalog:8101"])


def test_since_takes_iso_8601_and_defaults_to_utc() -> None:
    assert _parse_since("2026-03-01T09:00") == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert _parse_since("2026-03-01T09:00+02:00").utcoffset() is not None
    with pytest.raises(CliError, match="ISO 8601"):
        _parse_since("last tuesday")


def test_status_with_nothing_running_exits_1(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["status", "--data-dir", str(tmp_path)])

    assert exit_info.value.code == 1


def test_an_unreachable_mail_sink_is_one_red_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(SystemExit) as exit_info:
        run(["mail", "list", "--url", url, "--data-dir", str(tmp_path)])

    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: could not connect to")
    assert "Traceback" not in err


def test_dlq_without_a_broker_address_says_how_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS", raising=False)

    with pytest.raises(SystemExit):
        run(["dlq", "list", "x.dlq", "--data-dir", str(tmp_path)])

    assert "--bootstrap" in capsys.readouterr().err


def test_redrive_needs_an_offset_or_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["dlq", "redrive", "x.dlq", "--bootstrap", "127.0.0.1:1", "--data-dir", str(tmp_path)])

    assert "--offset N or --all" in capsys.readouterr().err


def test_the_data_dir_argument_is_found_before_parsing() -> None:
    from solidarity.shared.cli.app import _data_dir_argument

    assert _data_dir_argument(["partners", "create", "x", "--data-dir", "/tmp/s"]) == "/tmp/s"
    assert _data_dir_argument(["status", "--data-dir=/tmp/t"]) == "/tmp/t"
    assert _data_dir_argument(["status"]) is None
