"""The local stack for a bench run: a fresh folder, free ports, extra instances, profiling.

It is `LocalStack` (the stack behind `solidarity up`), so the services run exactly as they do
there, as real subprocesses with their own memory. On top of it: a second (third...) instance
of a service with the same environment, a service run under pyinstrument, and a stop that asks
every service to shut down at once instead of one after the other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from solidarity.shared.bench.profiles import ENV_PROFILE_OUTPUT, ENV_PROFILE_TARGET
from solidarity.shared.devstack.embedded import EmbeddedBroker, StackError, free_port
from solidarity.shared.devstack.stack import Component, LocalStack, StackPorts
from solidarity.shared.service import ServiceSpec

PROFILED_MODULE = "solidarity.shared.bench.profiled"
PROFILE_WRITE_S = 300.0


@dataclass(frozen=True, slots=True)
class Instance:
    """One running process of a service."""

    service: str  # "registration"
    name: str  # "registration", "registration-2"
    pid: int
    url: str
    log: Path


class BenchStack(LocalStack):
    """`LocalStack` on free ports in a folder of its own, able to add service instances."""

    def __init__(
        self,
        *,
        data_dir: Path,
        services: Sequence[ServiceSpec],
        profile: Sequence[str] = (),
        profile_dir: Path | None = None,
        service_env: Mapping[str, str] | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        ports = StackPorts(
            postgres=free_port(),
            broker=free_port(),
            smtp=free_port(),
            mail_web=free_port(),
            services={spec.name: free_port() for spec in services},
        )
        super().__init__(
            data_dir=data_dir,
            ports=ports,
            services=services,
            on_step=on_step,
            load_demo=True,
            service_timeout_s=120.0,
        )
        unknown = set(profile) - {spec.name for spec in services}
        if unknown:
            raise StackError(f"--profile names no installed service: {', '.join(sorted(unknown))}")
        self._profile = set(profile)
        self._service_env = dict(service_env or {})
        self._profile_dir = profile_dir or self.data_dir / "profiles"
        self._broker: EmbeddedBroker | None = None
        self._dsns: dict[str, str] = {}
        self._service_of: dict[str, str] = {spec.name: spec.name for spec in services}
        self.instances: list[Instance] = []

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    def profile_output(self, name: str) -> Path:
        return self._profile_dir / f"profile-{name}"

    def _start_service(self, spec: ServiceSpec, broker: EmbeddedBroker, dsn: str) -> Component:
        service = self._service_of[spec.name]
        self._broker = broker
        self._dsns.setdefault(service, dsn)
        run_spec, extra_env = spec, dict(self._service_env)
        if service in self._profile:
            self._profile_dir.mkdir(parents=True, exist_ok=True)
            run_spec = replace(spec, module=PROFILED_MODULE)
            extra_env[ENV_PROFILE_TARGET] = spec.module
            extra_env[ENV_PROFILE_OUTPUT] = str(self.profile_output(spec.name))
        # The child's environment is this process's plus the stack's own settings (which win:
        # a setting the stack makes, such as the ports, cannot be changed this way).
        previous = {name: os.environ.get(name) for name in extra_env}
        os.environ.update(extra_env)
        try:
            component = super()._start_service(run_spec, broker, dsn)
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        assert component.log is not None
        self.instances.append(
            Instance(
                service=service,
                name=spec.name,
                pid=component.pid,
                url=component.url,
                log=Path(component.log),
            )
        )
        return component

    def add_instance(self, service: str) -> Instance:
        """Start one more process of a service on the same database and consumer groups."""
        spec = next((s for s in self.services if s.name == service), None)
        if spec is None or self._broker is None:
            raise StackError(f"no running {service} service to add an instance to")
        number = sum(1 for i in self.instances if i.service == service) + 1
        extra = replace(spec, name=f"{service}-{number}", default_http_port=free_port())
        self._service_of[extra.name] = service
        self._start_service(extra, self._broker, self._dsns[service])
        return self.instances[-1]

    def dsn(self, service: str) -> str:
        """The database address a started service uses."""
        return self._dsns[service]

    def instances_of(self, service: str) -> list[Instance]:
        return [i for i in self.instances if i.service == service]

    def stop(self) -> None:
        """Ask every service to stop at once, then stop everything in reverse order. A profiled
        service gets up to `PROFILE_WRITE_S` to write its profile before it is killed."""
        names = set(self._service_of)
        services = [p for p in self._started if p.name in names and p.alive()]
        for process in services:
            with contextlib.suppress(ProcessLookupError):
                process.process.send_signal(signal.SIGTERM)
        for process in services:
            if self._service_of[process.name] in self._profile:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.process.wait(timeout=PROFILE_WRITE_S)
        super().stop()
