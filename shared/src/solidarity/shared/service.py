"""How a service describes itself to the local stack and the CLI (`solidarity.services`)."""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from solidarity.shared.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: how to run it, where its database is, and what it answers on."""

    name: str  # "catalog", "registration", "notifications"
    package: str  # "solidarity.catalog": migrations are found from it
    module: str  # run with `python -m <module>`; reads SOLIDARITY_* settings
    database: str  # the database name the local stack creates for it
    default_http_port: int
    health_path: str = "/health"
    ready_path: str = "/ready"
    # `solidarity` arguments the local stack runs once every service answers, to load demo
    # data (for example the catalog's default campaign); `solidarity up --no-demo` skips it.
    demo_command: tuple[str, ...] = ()
    # Environment variables holding secrets the service needs; on the local stack each is
    # generated once per data folder (dev-secrets.json) and given to the service and the CLI.
    dev_secrets: tuple[str, ...] = ()

    def settings_class(self) -> type[ServiceSettings]:
        """The service's settings class: `<package>.settings.<Name>Settings` by convention."""
        module = importlib.import_module(f"{self.package}.settings")
        cls = getattr(module, f"{self.name.capitalize()}Settings")
        if not (isinstance(cls, type) and issubclass(cls, ServiceSettings)):
            raise TypeError(f"{self.package}.settings has no ServiceSettings subclass")
        return cls

    def app_factory(self) -> Callable[..., FastAPI]:
        """The composition root: `<package>.bootstrap.create_app(settings)` by convention."""
        module = importlib.import_module(f"{self.package}.bootstrap")
        factory: Callable[..., FastAPI] = module.create_app
        return factory


DEV_SECRETS_FILE = "dev-secrets.json"


def load_dev_secrets(data_dir: Path, names: tuple[str, ...] = ()) -> dict[str, str]:
    """The local stack's generated secrets (created on first use, readable by the owner only).

    Only for the embedded development stack; deployments set real secrets themselves.
    """
    path = data_dir / DEV_SECRETS_FILE
    secrets_: dict[str, str] = {}
    if path.exists():
        secrets_ = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    missing = [n for n in names if n not in secrets_]
    if missing:
        for name in missing:
            secrets_[name] = secrets.token_urlsafe(32)
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(secrets_, indent=2, sort_keys=True))
    return secrets_


def discover_services() -> list[ServiceSpec]:
    """The services installed in this environment, in a stable order."""
    order = {"catalog": 0, "registration": 1, "notifications": 2}
    found: list[ServiceSpec] = []
    for entry in entry_points(group="solidarity.services"):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name} does not give a ServiceSpec")
        found.append(spec)
    return sorted(found, key=lambda s: (order.get(s.name, 99), s.name))
