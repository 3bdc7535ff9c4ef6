"""Watching a run from outside: answers on the outcomes topic, mail in the sink's folder, the
services' memory, their metrics and which partitions each instance was given.

Nothing here touches a service's tables: answers are read like a partner reads them, mail like
a person reads the sink, memory from the OS, partitions from each instance's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs in the dev group

from solidarity.shared.bench.ledger import BurstLedger, SinkMail
from solidarity.shared.bench.workload import index_of_email
from solidarity.shared.demo import mail_kind, metric_values
from solidarity.shared.partners import OutcomeReader

MailListener = Callable[[SinkMail], None]
MIN_READ_PAUSE_S = 1.0


class MailFolder:
    """The mail sink's folder, read incrementally.

    The sink names each mail by the UTC time it took it (`20261122T061018123456Z-3fa2b1`)
    and saves one mail at a time, writing its `.json` index entry last. A directory listing
    made while files are being created may show a newer file and miss an older one, so a pass
    reads only the mails named more than `settle_s` before the pass began (all of them
    complete and listed by then), after the last one read; the rest wait for the next pass.
    """

    def __init__(self, directory: Path, *, settle_s: float = 1.0) -> None:
        self.directory = directory
        self.settle_s = settle_s
        self._mark = ""

    def reset(self) -> None:
        self._mark = ""

    def read_new(self) -> list[SinkMail]:
        """Mail the sink took since the last call (blocking: run it in a thread)."""
        if not self.directory.exists():
            return []
        mark = self._mark
        settled = datetime.now(UTC) - timedelta(seconds=self.settle_s)
        cutoff = settled.strftime("%Y%m%dT%H%M%S%fZ")
        with os.scandir(self.directory) as entries:
            names = sorted(
                entry.name
                for entry in entries
                if entry.name.endswith(".json") and mark < entry.name < cutoff
            )
        mails: list[SinkMail] = []
        for name in names:
            try:
                data = json.loads((self.directory / name).read_text())
            except (OSError, ValueError):
                continue  # removed meanwhile (the sink was cleared)
            subject = str(data.get("subject", ""))
            recipients = data.get("to") or [""]
            mails.append(
                SinkMail(
                    to=str(recipients[0]),
                    subject=subject,
                    kind=mail_kind(subject),
                    message_id=data.get("message_id"),
                    received_at=datetime.fromisoformat(str(data["received_at"])).timestamp(),
                )
            )
        if names:
            self._mark = names[-1]
        return mails


class RssSampler:
    """Resident memory and CPU time of each watched process, sampled every `interval_s`."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._processes: dict[str, psutil.Process] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {}
        self._with_children: set[str] = set()

    def watch(self, name: str, pid: int, *, with_children: bool = False) -> None:
        """Watch a process; `with_children` (PostgreSQL's backends) counts only CPU time, the
        children's included, since their memory is mostly shared."""
        with contextlib.suppress(psutil.Error):
            self._processes[name] = psutil.Process(pid)
            self.cpu.setdefault(name, [])
            if with_children:
                self._with_children.add(name)
            else:
                self.samples.setdefault(name, [])

    def sample(self) -> None:
        now = time.time()
        for name, process in self._processes.items():
            try:
                if name in self._with_children:
                    family = [process, *process.children(recursive=True)]
                    cpu = 0.0
                    for member in family:
                        with contextlib.suppress(psutil.Error):
                            times = member.cpu_times()
                            cpu += times.user + times.system
                    self.cpu[name].append((now, cpu))
                    continue
                with process.oneshot():
                    rss = process.memory_info().rss / (1024 * 1024)
                    times = process.cpu_times()
            except psutil.Error:
                continue
            self.samples[name].append((now, rss))
            self.cpu[name].append((now, float(times.user + times.system)))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

    def peak(self, name: str, start: float = 0.0, end: float = math.inf) -> float:
        values = [rss for at, rss in self.samples.get(name, []) if start <= at <= end]
        return round(max(values), 1) if values else 0.0

    def cpu_seconds(self, name: str, start: float, end: float) -> float:
        """CPU time (user and system) the process used between two moments."""
        inside = [cpu for at, cpu in self.cpu.get(name, []) if start <= at <= end]
        return round(inside[-1] - inside[0], 2) if len(inside) > 1 else 0.0


class Observers:
    """The background loops of a run: answers and mail into the ledger, memory samples."""

    def __init__(
        self,
        *,
        ledger: BurstLedger,
        reader: OutcomeReader,
        folder: MailFolder,
        sampler: RssSampler,
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self.folder = folder
        self.sampler = sampler
        self.mail_listeners: list[MailListener] = []
        # When the newest mail read so far reached the sink (seconds since the epoch).
        self.newest_mail_at = time.time()
        self.read_pause_s = MIN_READ_PAUSE_S
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # What a reading pass met (by error type): it is tried again, and the count goes into
        # the results, so that a watcher that stumbled cannot pass for answers that never came.
        self.errors: Counter[str] = Counter()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._answers(), name="bench-answers"),
            asyncio.create_task(self._mail(), name="bench-mail"),
            asyncio.create_task(self.sampler.run(self._stop), name="bench-rss"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _answers(self) -> None:
        while not self._stop.is_set():
            try:
                outcomes = await self.reader.poll(0.2)
            except Exception as exc:  # the watcher outlives a failed read: it reads again
                self.errors[f"answers:{type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
                continue
            if outcomes:
                self.ledger.add_outcomes(outcomes, time.time())

    async def _mail(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self.read_mail_now()
            except Exception as exc:  # the watcher outlives a failed read: it reads again
                self.errors[f"mail:{type(exc).__name__}"] += 1
            # A pass lists the whole folder: with millions of mails, look less often, so that
            # reading costs this process a few per cent of a core at most.
            self.read_pause_s = max(MIN_READ_PAUSE_S, 20 * (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.read_pause_s)

    def mail_quiet_s(self) -> float:
        """How long since the newest mail read reached the sink."""
        return time.time() - self.newest_mail_at

    def quiet_needed_s(self, at_least: float) -> float:
        """A quiet spell that means something given how often the folder is read."""
        return max(at_least, 2 * self.read_pause_s + self.folder.settle_s)

    async def read_mail_now(self) -> int:
        mails = await asyncio.to_thread(self.folder.read_new)
        for mail in mails:
            self.ledger.add_mail(mail, index_of_email(mail.to))
            for listener in self.mail_listeners:
                listener(mail)
        if mails:
            self.newest_mail_at = max(self.newest_mail_at, max(m.received_at for m in mails))
        return len(mails)


# Metrics and partitions ----------------------------------------------------------------------


def metric_total(text: str, name: str) -> float:
    """The sum over every label set of a Prometheus counter (`<name>_total`) or gauge."""
    values = metric_values(text, f"{name}_total") or metric_values(text, name)
    return sum(values.values())


async def scrape(client: httpx.AsyncClient, url: str) -> str:
    try:
        return (await client.get(f"{url}/metrics", timeout=5.0)).text
    except httpx.HTTPError:
        return ""


async def notifications_busy(client: httpx.AsyncClient, urls: Sequence[str]) -> bool:
    """Whether any notifications instance has mail due or being sent, or events unread.
    (The gauges refresh every few seconds: a caller also waits for the folder to go quiet.)"""
    for url in urls:
        text = await scrape(client, url)
        depth = metric_values(text, "solidarity_notifications_queue_depth")
        lag = metric_values(text, "solidarity_consumer_lag")
        due = sum(v for k, v in depth.items() if 'state="due"' in k or 'state="sending"' in k)
        if due + sum(lag.values()) > 0:
            return True
    return False


_ASSIGNED = re.compile(r"assigned to partitions: \((?P<list>.*)\)")
_PARTITION = re.compile(r"TopicPartition\(topic='(?P<topic>[^']+)', partition=(?P<number>\d+)\)")


def assigned_partitions(log: Path, topic: str) -> list[int]:
    """The partitions of `topic` an instance was last given, from its log (aiokafka logs every
    assignment); empty when the log shows none."""
    found: list[int] = []
    with contextlib.suppress(OSError), log.open(errors="replace") as lines:
        for line in lines:
            match = _ASSIGNED.search(line)
            if match is None:
                continue
            parts = [
                int(m["number"]) for m in _PARTITION.finditer(match["list"]) if m["topic"] == topic
            ]
            if parts:
                found = sorted(parts)
    return found


def shares_cover(shares: Sequence[Sequence[int]], partitions: int) -> bool:
    """Every partition owned by exactly one instance, and every instance owning some."""
    taken = [p for share in shares for p in share]
    return (
        len(taken) == partitions
        and set(taken) == set(range(partitions))
        and all(share for share in shares)
    )
