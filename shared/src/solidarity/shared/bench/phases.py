"""The phases of a bench run on a started stack: prepare, raw limits, burst, fan-out, scaling.

Each returns plain numbers (JSON-ready). The partners are played with
`solidarity.shared.partners` (signed Kafka messages, the outcome reader) and the campaign is
opened with `solidarity.shared.demo` (a copy of the demo campaign moved ahead by whole years,
so it takes registrations today): the same code as `solidarity demo` and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs in the dev group
from aiokafka.errors import KafkaError

from solidarity.shared.bench import raw, trace
from solidarity.shared.bench.bare import bare_pipeline
from solidarity.shared.bench.ledger import BurstLedger, SinkMail, latency_summary
from solidarity.shared.bench.observe import (
    MailFolder,
    Observers,
    RssSampler,
    assigned_partitions,
    metric_total,
    notifications_busy,
    scrape,
    shares_cover,
)
from solidarity.shared.bench.options import BenchOptions
from solidarity.shared.bench.stack import BenchStack, Instance
from solidarity.shared.bench.workload import PARTNER_SEATS, Workload
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS
from solidarity.shared.demo import (
    CampaignInfo,
    CatalogAdmin,
    StackAddresses,
    make_schools,
    metric_values,
    open_campaign,
    wait_for_registration,
)
from solidarity.shared.devstack.stack import StackState
from solidarity.shared.partners import (
    HttpPartner,
    KafkaPartner,
    OutcomeReader,
    PartnerCredentials,
    SignedMessage,
    create_partner_account,
)

Say = Callable[[str], None]

SAMPLE_BASE = 1_000_000_000  # submission numbers of raw-limit samples: never sent for real
PROGRESS_EVERY_S = 5.0
MAIL_QUIET_S = 6.0  # longer than the notifications service takes to refresh its gauges
MAIL_GIVE_UP_S = 30.0  # idle and quiet this long with mail still missing: it is not coming
CHUNK = 500


class BenchError(RuntimeError):
    """The bench cannot go ahead; the message is one line for a person."""


@dataclass
class Setup:
    """A started stack made ready: an open campaign, partner accounts, the workload."""

    stack: BenchStack
    state: StackState
    addresses: StackAddresses
    admin_token: str
    campaign: CampaignInfo
    accounts: list[PartnerCredentials]
    workload: Workload
    run: str

    @property
    def bootstrap(self) -> str:
        return self.state.kafka_bootstrap

    def urls(self, service: str) -> list[str]:
        return [i.url for i in self.stack.instances_of(service)]


def development_admin_token() -> str:
    try:
        from solidarity.catalog.settings import DEVELOPMENT_ADMIN_TOKEN
    except ImportError as exc:
        raise BenchError("the catalog service is not installed: the bench needs it") from exc
    return DEVELOPMENT_ADMIN_TOKEN


async def prepare(stack: BenchStack, options: BenchOptions, *, run: str, say: Say) -> Setup:
    """Open the demo campaign for registrations, create the partners, build the workload."""
    state = stack.state
    if state is None:
        raise BenchError("the stack is not started")
    addresses = StackAddresses.from_state(state)
    token = development_admin_token()
    async with CatalogAdmin(addresses.catalog_url, token) as admin:
        campaign, closed = await open_campaign(admin, options.campaign)
    if closed is not None:
        say(
            f"{closed.slug} took its last sign-up on {closed.ends_on}: registering for its copy "
            f"{campaign.slug} ({campaign.starts_on} to {campaign.ends_on}, same sessions)"
        )
    seats = PARTNER_SEATS[: options.partners]
    say(f"creating {len(seats)} partner accounts with `solidarity partners create`")
    accounts = list(
        await asyncio.gather(
            *(
                create_partner_account(
                    f"{seat.name} (bench {run})", [campaign.slug], data_dir=stack.data_dir
                )
                for seat in seats
            )
        )
    )
    async with HttpPartner(accounts[0], base_url=addresses.registration_url) as probe:
        await wait_for_registration(probe, campaign, timeout_s=120)
    schools = make_schools(options.schools, random.Random(options.seed))  # noqa: S311
    if len(schools) < options.schools:
        say(f"only {len(schools)} distinct school names can be made; using them all")
    workload = Workload(
        campaign=campaign,
        accounts=accounts,
        seats=seats,
        schools=schools,
        run=run,
        seed=options.seed,
        invitation_share=options.invitation_share,
    )
    return Setup(stack, state, addresses, token, campaign, accounts, workload, run)


# Raw limits ----------------------------------------------------------------------------------


async def measure_raw(setup: Setup, options: BenchOptions, *, say: Say) -> raw.RawLimits:
    """The four raw limits, one after the other, while the services idle."""
    samples = [setup.workload.build(SAMPLE_BASE + i).message for i in range(1_000)]
    messages, mails = options.raw_message_count, options.raw_mail_count
    admin_dsn = setup.state.postgres_dsn
    connections = smtp_connections(options)
    say(f"raw limit: broker pipe, {messages:,} submission-shaped messages")
    pipe, produce = await raw.broker_pipe(setup.bootstrap, samples, messages)
    say(f"  {pipe:,.0f} msgs/s produced and consumed ({produce:,.0f} msgs/s produce only)")
    say(f"raw limit: PostgreSQL, {messages:,} registration-shaped rows in batches of {raw.BATCH}")
    rows = await raw.postgres_rows(admin_dsn, messages)
    say(f"  {rows:,.0f} rows/s")
    say(f"raw limit: SMTP, {mails:,} confirmation-shaped mails over {connections} connections")
    smtp, size = await raw.smtp_mails(
        setup.state.smtp_host, setup.state.smtp_port, mails, connections
    )
    say(f"  {smtp:,.0f} mails/s ({size:,} bytes each)")
    async with httpx.AsyncClient(timeout=60) as client:
        (await client.delete(f"{setup.state.mail_url}/api/messages")).raise_for_status()
    say(f"raw limit: bare pipeline, {messages:,} submissions consumed, inserted, answered")
    bare = await bare_pipeline(setup.bootstrap, admin_dsn, samples, messages)
    say(f"  {bare:,.0f} msgs/s")
    return raw.RawLimits(
        pipe_msgs_per_s=pipe,
        pipe_produce_per_s=produce,
        pipe_messages=messages,
        pg_rows_per_s=rows,
        pg_rows=messages,
        smtp_mails_per_s=smtp,
        smtp_mails=mails,
        smtp_connections=connections,
        smtp_mail_bytes=size,
        bare_pipeline_per_s=bare,
        bare_messages=messages,
    )


def smtp_connections(options: BenchOptions) -> int:
    """The notifications service's SMTP pool size, as the bench runs it."""
    chosen = dict(options.service_env).get("SOLIDARITY_SMTP_POOL_SIZE")
    if chosen is not None and chosen.isdigit():
        return int(chosen)
    try:
        from solidarity.notifications.settings import NotificationsSettings
    except ImportError:
        return 4
    default = NotificationsSettings.model_fields["smtp_pool_size"].default
    return int(default) if isinstance(default, int) else 4


# Sending -------------------------------------------------------------------------------------


PUBLISH_TRIES = 4


async def publish_resending(
    partner: KafkaPartner, messages: Sequence[SignedMessage], ledger: BurstLedger
) -> int:
    """Publish like a partner that sends again what the broker did not acknowledge (the same
    signed messages: the platform answers a repeated submission id once, flagged `duplicate`).
    A publish that still fails stops the bench: its submissions must not be counted as lost."""
    for attempt in range(1, PUBLISH_TRIES + 1):
        try:
            return await partner.publish(messages)
        except (KafkaError, OSError) as exc:
            if attempt == PUBLISH_TRIES:
                raise BenchError(
                    f"a partner could not publish {len(messages):,} submissions in "
                    f"{PUBLISH_TRIES} tries ({type(exc).__name__})"
                ) from exc
            ledger.resent += len(messages)
            await asyncio.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


async def publish_flood(
    workload: Workload, partners: Sequence[KafkaPartner], ledger: BurstLedger, numbers: range
) -> None:
    """Every partner sends its share of `numbers` as fast as it can, all at once."""

    count = len(partners)

    async def send(partner: int) -> None:
        # Submission i belongs to partner i % count (see Workload.partner_of).
        mine = range(numbers.start + (partner - numbers.start) % count, numbers.stop, count)
        for offset in range(0, len(mine), CHUNK):
            batch = [workload.build(i) for i in mine[offset : offset + CHUNK]]
            now = time.time()
            for item in batch:
                ledger.submitted(item.index, item.asks, now)
            await publish_resending(partners[partner], [item.message for item in batch], ledger)

    await asyncio.gather(*(send(p) for p in range(count)))


async def publish_paced(
    workload: Workload,
    partners: Sequence[KafkaPartner],
    ledger: BurstLedger,
    numbers: range,
    rate: float,
) -> None:
    """Send `numbers` at `rate` submissions a second in all, spread evenly in time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    pending: set[asyncio.Task[int]] = set()
    failed: list[BaseException] = []

    def done(task: asyncio.Task[int]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failed.append(task.exception())  # type: ignore[arg-type]

    while sent < len(numbers) and not failed:
        due = min(len(numbers), int((loop.time() - started) * rate) + 1)
        by_partner: dict[int, list[Any]] = {}
        for i in numbers[sent:due]:
            item = workload.build(i)
            ledger.submitted(item.index, item.asks, time.time())
            by_partner.setdefault(item.partner, []).append(item.message)
        for partner, messages in by_partner.items():
            task = asyncio.create_task(publish_resending(partners[partner], messages, ledger))
            pending.add(task)
            task.add_done_callback(done)
        sent = due
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending, return_exceptions=True)
    if failed:  # never dropped unseen: a failed publish is not a lost submission
        raise failed[0]


# Waiting -------------------------------------------------------------------------------------


async def wait_for_answers(ledger: BurstLedger, target: int, *, stall_s: float, say: Say) -> bool:
    """Until `target` submissions are answered in full; False if answers stopped coming."""
    last_count, last_change = -1, time.monotonic()
    last_said, said_count = time.monotonic(), ledger.answered
    while ledger.answered < target:
        await asyncio.sleep(0.25)
        now = time.monotonic()
        if ledger.answered != last_count:
            last_count, last_change = ledger.answered, now
        elif now - last_change > stall_s:
            say(f"  no new answer for {stall_s:.0f} s: giving up on the rest")
            return False
        if now - last_said >= PROGRESS_EVERY_S:
            rate = (ledger.answered - said_count) / (now - last_said)
            say(f"  answered {ledger.answered:,} of {target:,} ({rate:,.0f}/s)")
            last_said, said_count = now, ledger.answered
    return True


async def wait_for_mail(
    ledger: BurstLedger,
    observers: Observers,
    notifications_urls: Sequence[str],
    *,
    stall_s: float,
    budget_s: float | None,
    say: Say,
    done: Callable[[], bool] | None = None,
) -> bool:
    """Until the mail has settled: every mail the answers call for is in the sink (and `done`,
    if given, holds), the notifications service has nothing due, sending or unread, and no new
    mail came for a few seconds. False if mail stopped coming first, or the budget ran out."""
    started, started_at = time.monotonic(), time.time()
    last_said, said_count = started, sum(ledger.mails.values())
    async with httpx.AsyncClient() as client:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            # Quiet since the newest mail, or since this wait began if that is later.
            quiet = min(observers.mail_quiet_s(), time.time() - started_at)
            finished = ledger.mail_pending <= 0 and (done is None or done())
            settled = quiet >= observers.quiet_needed_s(MAIL_QUIET_S)
            if settled and not await notifications_busy(client, notifications_urls):
                if finished:
                    return True
                if quiet >= observers.quiet_needed_s(MAIL_GIVE_UP_S):
                    say(
                        f"  the notifications service is idle and no mail came for "
                        f"{MAIL_GIVE_UP_S:.0f} s: {max(0, ledger.mail_pending):,} expected "
                        "mails are missing"
                    )
                    return False
            if budget_s is not None and now - started > budget_s:
                say(f"  mail budget of {budget_s:.0f} s spent ({ledger.mail_pending:,} pending)")
                return False
            if quiet > observers.quiet_needed_s(stall_s):
                say(f"  no new mail for {stall_s:.0f} s ({ledger.mail_pending:,} expected mails)")
                return False
            if now - last_said >= PROGRESS_EVERY_S:
                total = sum(ledger.mails.values())
                rate = (total - said_count) / (now - last_said)
                say(
                    f"  mail in the sink {total:,} ({rate:,.0f}/s), "
                    f"{max(0, ledger.mail_pending):,} called for and not there yet"
                )
                last_said, said_count = now, total


# The burst -----------------------------------------------------------------------------------


@dataclass
class Watching:
    """A burst's ledger and observers, with the partners' producers."""

    ledger: BurstLedger
    observers: Observers
    sampler: RssSampler
    partners: list[KafkaPartner]
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    steady_rate: float = 0.0
    steady_capacity: float = 0.0  # what the steady rate is a share of (`sustainable_rate`)
    # Per stage: decision batches, seconds inside them (the service's own histogram), seconds
    # from the first submission to the last answer.
    decisions: dict[str, dict[str, float]] = field(default_factory=dict)
    # Where each submission that had to be sent again had stopped (`trace_lost`).
    traced_before_resend: list[dict[str, Any]] = field(default_factory=list)


def sustainable_rate(ledger: BurstLedger, flood: range) -> float:
    """What the platform kept up with in the flood, submissions/s: the lower of the rate at
    which they were decided and the rate at which they were decided *and* their mail was in
    the sink (first submission to last mail). Both services share the machine, so a load that
    only the registration service keeps up with still queues behind the mail."""
    first, last = ledger.span(flood.start, flood.stop)
    decided = ledger.answered_between(flood.start, flood.stop)
    rate = decided / (last - first) if last > first else 100.0
    mails, _, mail_last = ledger.mail_span(flood.start, flood.stop)
    if mails and mail_last > first and ledger.mail_pending <= 0:  # all of it came
        rate = min(rate, decided / (mail_last - first))
    return rate


@contextlib.asynccontextmanager
async def watching(setup: Setup, capacity: int) -> AsyncIterator[Watching]:
    """Start the outcome reader, the mail folder reader, the memory sampler and the partners."""
    ledger = BurstLedger(capacity, origin=time.time())
    sampler = RssSampler()
    for instance in setup.stack.instances:
        sampler.watch(instance.name, instance.pid)
    for component in setup.state.components:
        if component.kind in ("broker", "mailsink", "postgres"):
            sampler.watch(component.name, component.pid, with_children=component.kind == "postgres")
    sampler.watch("bench", os.getpid())  # this process: partners, reader, folder, sampler
    reader = OutcomeReader(
        bootstrap_servers=setup.bootstrap, partner_ids=[a.partner_id for a in setup.accounts]
    )
    async with reader, contextlib.AsyncExitStack() as exits:
        observers = Observers(
            ledger=ledger, reader=reader, folder=MailFolder(setup.stack.mail_dir), sampler=sampler
        )
        partners = [
            await exits.enter_async_context(KafkaPartner(a, bootstrap_servers=setup.bootstrap))
            for a in setup.accounts
        ]
        observers.start()
        try:
            yield Watching(ledger, observers, sampler, partners)
        finally:
            await observers.stop()


async def flood_and_drain(
    setup: Setup,
    watch: Watching,
    numbers: range,
    options: BenchOptions,
    *,
    say: Say,
    label: str,
    rate: float | None = None,
) -> None:
    """Send `numbers` (all at once, or at `rate`), then wait for every answer and the mail."""
    started = time.time()
    pace = "as fast as the partners can" if rate is None else f"at {rate:,.0f}/s"
    say(f"{label}: {len(numbers):,} submissions from {len(watch.partners)} partners, {pace}")
    registrations = setup.stack.instances_of("registration")
    batches_before, seconds_before = await decision_totals(registrations)
    held: list[psutil.Process] = []
    if options.hold_notifications and rate is None:
        for instance in setup.stack.instances_of("notifications"):
            process = psutil.Process(instance.pid)
            process.suspend()
            held.append(process)
        say("  the notifications service is suspended until every submission is answered")
    if rate is None:
        sending = asyncio.create_task(
            publish_flood(setup.workload, watch.partners, watch.ledger, numbers)
        )
    else:
        sending = asyncio.create_task(
            publish_paced(setup.workload, watch.partners, watch.ledger, numbers, rate)
        )
    target = watch.ledger.answered + len(numbers)
    try:
        answered = await wait_for_answers(
            watch.ledger, target, stall_s=min(options.resend_after_s, options.stall_s), say=say
        )
        await sending
        if not answered:
            answered = await resend_unanswered(setup, watch, numbers, options, target, say=say)
    finally:
        for process in held:
            process.resume()
    answers_done = time.time()
    batches, seconds = await decision_totals(registrations)
    watch.decisions[label] = {
        "batches": batches - batches_before,
        "decision_s": round(seconds - seconds_before, 3),
        "wall_s": round(answers_done - started, 3),
    }
    if answered:
        say(f"  every submission answered in {answers_done - started:,.1f} s; mail settling")
    await wait_for_mail(
        watch.ledger,
        watch.observers,
        setup.urls("notifications"),
        stall_s=options.stall_s,
        budget_s=options.mail_budget_s,
        say=say,
    )
    watch.windows[label] = (started, time.time())


async def consumer_results(setup: Setup) -> dict[str, dict[str, float]]:
    """What became of the messages each service's consumers saw (from their `/metrics`):
    `{service: {"consumer result": count}}`, summed over a service's instances. In a bench,
    anything but `applied` (a duplicate, an ignored message, a dead letter) needs a reason."""
    found: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient() as client:
        for instance in setup.stack.instances:
            counts = found.setdefault(instance.service, {})
            for key, value in consumer_counts(await scrape(client, instance.url)).items():
                counts[key] = counts.get(key, 0.0) + value
    return found


def consumer_counts(metrics: str) -> dict[str, float]:
    """`{"consumer result": count}` from a service's `/metrics` text."""
    counts: dict[str, float] = {}
    for labels, value in metric_values(metrics, "solidarity_consumer_messages_total").items():
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[f"{fields.get('consumer', '?')} {fields.get('result', '?')}"] = value
    return counts


async def trace_lost(
    setup: Setup, watch: Watching, numbers: range, *, say: Say
) -> list[dict[str, Any]]:
    """Follow a few unanswered submissions through the pipeline while the stack still runs
    (see `solidarity.shared.bench.trace`); says one line for each."""
    lost = watch.ledger.unanswered_numbers(numbers.start, numbers.stop, limit=trace.TRACED)
    if not lost:
        return []
    say(f"  tracing {len(lost)} unanswered submission(s) through the pipeline")
    workload = setup.workload
    try:
        traced = await trace.trace_unanswered(
            bootstrap=setup.bootstrap,
            registration_dsn=setup.stack.dsn("registration"),
            submissions=[
                (
                    str(workload.accounts[workload.partner_of(i)].partner_id),
                    workload.submission_id(i),
                )
                for i in lost
            ],
        )
    except Exception as exc:  # a diagnosis must not hide the figures it explains
        say(f"  could not trace them: {type(exc).__name__}: {exc}")
        return []
    for item in traced:
        say(f"  {trace.describe(item)}")
    results = (await consumer_results(setup)).get("registration", {})
    unusual = {k: v for k, v in results.items() if not k.endswith(" applied") and v}
    say(
        f"  the registration service's consumers, besides what they applied: {unusual or 'nothing'}"
    )
    return traced


async def resend_unanswered(
    setup: Setup,
    watch: Watching,
    numbers: range,
    options: BenchOptions,
    target: int,
    *,
    say: Say,
) -> bool:
    """Answers have stopped with some submissions unanswered. A few: trace where each stopped,
    then send them again as a partner does after its timeout, and wait. Many: the platform is
    slow or stuck, not a stray loss: wait as before. True when everything is answered."""
    ledger = watch.ledger
    waiting = ledger.unanswered_numbers(numbers.start, numbers.stop, limit=options.resend_limit + 1)
    rest_s = max(0.0, options.stall_s - options.resend_after_s)
    if not waiting or len(waiting) > options.resend_limit:
        return await wait_for_answers(ledger, target, stall_s=rest_s, say=say)
    say(f"  {len(waiting)} submission(s) without an answer after {options.resend_after_s:.0f} s")
    watch.traced_before_resend += await trace_lost(setup, watch, numbers, say=say)
    workload = setup.workload
    by_partner: dict[int, list[SignedMessage]] = {}
    for number in waiting:
        by_partner.setdefault(workload.partner_of(number), []).append(
            workload.build(number).message
        )
    say("  sending them again, as a partner does after its timeout (the same submission ids)")
    for partner, messages in by_partner.items():
        await publish_resending(watch.partners[partner], messages, ledger)
    ledger.resent_unanswered += len(waiting)
    return await wait_for_answers(ledger, target, stall_s=max(rest_s, 15.0), say=say)


def burst_figures(watch: Watching, flood: range, steady: range, setup: Setup) -> dict[str, Any]:
    """The burst's numbers: rates, latencies, memory, losses."""
    ledger = watch.ledger
    first, last = ledger.span(flood.start, flood.stop)
    decided = ledger.answered_between(flood.start, flood.stop)
    mails, mail_first, mail_last = ledger.mail_span(flood.start, flood.stop)
    flood_outcome = latency_summary(ledger.outcome_latencies(flood.start, flood.stop))
    flood_mail = latency_summary(ledger.mail_latencies(flood.start, flood.stop))
    steady_outcome = latency_summary(ledger.outcome_latencies(steady.start, steady.stop))
    steady_mail = latency_summary(ledger.mail_latencies(steady.start, steady.stop))
    windows = watch.windows
    start = min(w[0] for w in windows.values())
    end = max(w[1] for w in windows.values())
    rss = {i.name: watch.sampler.peak(i.name, start, end) for i in setup.stack.instances}
    growth = {
        "registration": rss_growth(watch.sampler, "registration", first, last),
        "notifications": rss_growth(watch.sampler, "notifications", mail_first, mail_last),
    }
    cpu = {name: watch.sampler.cpu_seconds(name, start, end) for name in watch.sampler.cpu}
    duplicated_mails = ledger.mail_duplicated
    lost = ledger.unanswered(0, steady.stop or flood.stop)
    has_steady = len(steady) > 0
    latency = steady_outcome if has_steady else flood_outcome
    mail_latency = steady_mail if has_steady else flood_mail
    return {
        "registrations": ledger.sent,
        "flood_registrations": len(flood),
        "steady_registrations": len(steady),
        "decided_per_s": round(decided / (last - first), 1) if last > first else 0.0,
        "mails": sum(ledger.mails.values()),
        "mails_per_s": round(mails / (mail_last - mail_first), 1)
        if mail_last > mail_first
        else 0.0,
        "outcome_latency_p50_s": latency["p50_s"],
        "outcome_latency_p95_s": latency["p95_s"],
        "outcome_latency_p99_s": latency["p99_s"],
        "mail_latency_p50_s": mail_latency["p50_s"],
        "mail_latency_p95_s": mail_latency["p95_s"],
        "mail_latency_p99_s": mail_latency["p99_s"],
        "flood": {
            "seconds_to_answer_all": round(last - first, 2),
            **batch_figures(watch.decisions.get("flood") or watch.decisions.get("scaled burst")),
            "outcome_latency": flood_outcome,
            "mail_latency": flood_mail,
            "mail_seconds": round(mail_last - mail_first, 2),
        },
        "steady": {
            "rate_per_s": round(watch.steady_rate, 1),
            "sustainable_per_s": round(watch.steady_capacity, 1),
            "outcome_latency": steady_outcome,
            "mail_latency": steady_mail,
        },
        "peak_rss_mb": max(rss.values(), default=0.0),
        "peak_rss_mb_by_process": rss
        | {
            name: watch.sampler.peak(name, start, end)
            for name in ("broker", "mailsink", "bench")
            if name in watch.sampler.samples
        },
        "rss_growth_mb": growth,
        "cpu_seconds_by_process": cpu,
        "cpu_ms_per_submission": {
            name: round(1000 * cpu.get(name, 0.0) / max(1, ledger.sent), 3)
            for name in ("registration", "postgres", "broker")
        },
        "cpu_ms_per_mail": {
            name: round(1000 * cpu.get(name, 0.0) / max(1, sum(ledger.mails.values())), 3)
            for name in ("notifications", "mailsink")
        },
        "lost": lost,
        "duplicated": ledger.duplicated + duplicated_mails,
        "duplicated_answers": ledger.duplicated,
        "duplicated_mails": duplicated_mails,
        "wire_repeats": ledger.wire_repeats,
        "partner_resends": ledger.resent,
        "resent_after_no_answer": ledger.resent_unanswered,
        "traced_before_resend": watch.traced_before_resend,
        "watcher_errors": dict(watch.observers.errors),
        "answers_to_resends": ledger.resend_answers,
        "mails_missing": max(0, ledger.mail_pending),
        "outcomes": dict(ledger.outcomes),
        "rejections": dict(ledger.rejections),
        "mails_by_kind": dict(ledger.mails),
        "invitable": ledger.invitable,
    }


def batch_figures(decisions: dict[str, float] | None) -> dict[str, float]:
    """How a stage's time divides between deciding batches and everything around them."""
    if not decisions or not decisions.get("batches"):
        return {}
    batches = decisions["batches"]
    return {
        "decision_batches": batches,
        "decision_s_per_batch": round(decisions["decision_s"] / batches, 4),
        "wall_s_per_batch": round(decisions["wall_s"] / batches, 4),
        "decision_share_of_wall": round(decisions["decision_s"] / decisions["wall_s"], 3)
        if decisions["wall_s"]
        else 0.0,
    }


def rss_growth(sampler: RssSampler, name: str, start: float, end: float) -> float:
    """Peak memory in the last quarter of a window minus the peak in its first quarter."""
    if end <= start or name not in sampler.samples:
        return 0.0
    quarter = (end - start) / 4
    early = sampler.peak(name, start, start + quarter)
    late = sampler.peak(name, end - quarter, end)
    return round(late - early, 1) if early and late else 0.0


def memory_series(sampler: RssSampler, origin: float, *, points: int = 600) -> dict[str, Any]:
    """Each process's resident memory over the run (MB, the peak of each step), for the chart."""
    end = max((at for samples in sampler.samples.values() for at, _ in samples), default=origin)
    step = max(1, math.ceil((end - origin) / points))
    by_process: dict[str, list[float]] = {}
    for name, samples in sampler.samples.items():
        peaks: dict[int, float] = {}
        for at, rss in samples:
            bucket = int((at - origin) // step)
            peaks[bucket] = max(peaks.get(bucket, 0.0), rss)
        last = max(peaks, default=-1)
        by_process[name] = [round(peaks.get(b, 0.0), 1) for b in range(last + 1)]
    return {"step_s": step, "by_process": by_process}


def series(ledger: BurstLedger) -> dict[str, list[int]]:
    """Per-second counts since the ledger's origin, for the chart."""
    last = max([*ledger.submitted_per_s, *ledger.answered_per_s, *ledger.mails_per_s, 0], default=0)
    seconds = range(last + 1)
    return {
        "second": list(seconds),
        "submitted": [ledger.submitted_per_s.get(s, 0) for s in seconds],
        "answered": [ledger.answered_per_s.get(s, 0) for s in seconds],
        "mails": [ledger.mails_per_s.get(s, 0) for s in seconds],
    }


# Fan-out -------------------------------------------------------------------------------------


@dataclass
class InviteWatch:
    """Counts the invitations to one session as they reach the sink."""

    title: str
    count: int = 0
    first: float = 0.0
    last: float = 0.0

    def add(self, mail: SinkMail) -> None:
        if mail.kind == "invitation" and mail.subject.endswith(self.title):
            self.count += 1
            self.first = min(self.first or mail.received_at, mail.received_at)
            self.last = max(self.last, mail.received_at)


async def run_fanout(
    setup: Setup, watch: Watching, options: BenchOptions, *, say: Say
) -> dict[str, Any]:
    """A new webinar for everyone: time until every consenting signed-up person's invitation
    is in the sink."""
    expected = watch.ledger.invitable
    title = f"Fan-out webinar {setup.run}"
    invites = InviteWatch(title)
    watch.observers.mail_listeners.append(invites.add)
    campaign = setup.campaign
    day = campaign.starts_on + timedelta(days=1)
    body = {
        "kind": "webinar",
        "title": title,
        "description": "A webinar scheduled during the bench, open to everyone.",
        "starts_at": f"{day.isoformat()}T17:00:00",
        "ends_at": f"{day.isoformat()}T18:00:00",
        "time_zone": campaign.time_zone,
        "display_time_zones": ["America/Los_Angeles", "America/New_York"],
        "capacity": None,
        "audience": [],
        "join_url": "https://example.org/bench/fan-out",
    }
    say(f"fan-out: a new webinar for a campaign with {expected:,} people who want invitations")
    before_duplicates = watch.ledger.mail_duplicated
    started = time.time()
    async with CatalogAdmin(setup.addresses.catalog_url, setup.admin_token) as admin:
        await admin.create(f"/campaigns/{campaign.campaign_id}/sessions", body)
    settled = await wait_for_mail(
        watch.ledger,
        watch.observers,
        setup.urls("notifications"),
        stall_s=options.stall_s,
        budget_s=None,
        say=say,
        done=lambda: invites.count >= expected,
    )
    if not settled:
        say(f"  {expected - invites.count:,} invitations did not arrive")
    elapsed = invites.last - started if invites.last else 0.0
    return {
        "invitees": expected,
        "invites": invites.count,
        "missing": max(0, expected - invites.count),
        "duplicated": watch.ledger.mail_duplicated - before_duplicates,
        "seconds_to_all": round(elapsed, 2),
        "seconds_to_first": round(invites.first - started, 2) if invites.first else 0.0,
        "invites_per_s": round(invites.count / elapsed, 1) if elapsed > 0 else 0.0,
    }


# Scaling -------------------------------------------------------------------------------------


async def wait_for_shares(stack: BenchStack, *, timeout_s: float, say: Say) -> dict[str, Any]:
    """Until the partitions are shared among the instances of each service (from their logs)."""
    topics = {
        "registration": (REGISTRATION_SUBMISSIONS.name, REGISTRATION_SUBMISSIONS.partitions),
        "notifications": (REGISTRATION_OUTCOMES.name, REGISTRATION_OUTCOMES.partitions),
    }
    deadline = time.monotonic() + timeout_s
    while True:
        shares = {
            service: {
                i.name: assigned_partitions(i.log, topic) for i in stack.instances_of(service)
            }
            for service, (topic, _) in topics.items()
        }
        if all(
            shares_cover(list(shares[service].values()), count)
            for service, (_, count) in topics.items()
        ):
            return shares
        if time.monotonic() > deadline:
            say("  the instances did not settle on a clean share of partitions in time")
            return shares
        await asyncio.sleep(1.0)


async def decision_totals(instances: Sequence[Instance]) -> tuple[float, float]:
    """(batches decided, seconds spent deciding them) over the registration instances, from
    their `solidarity_registration_decision_batch_seconds` histograms."""
    async with httpx.AsyncClient() as client:
        texts = await asyncio.gather(*(scrape(client, i.url) for i in instances))
    name = "solidarity_registration_decision_batch_seconds"
    count = sum(sum(metric_values(text, f"{name}_count").values()) for text in texts)
    total = sum(sum(metric_values(text, f"{name}_sum").values()) for text in texts)
    return count, total


async def instance_counters(instances: Sequence[Instance], metric: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        texts = await asyncio.gather(*(scrape(client, i.url) for i in instances))
    return {i.name: metric_total(text, metric) for i, text in zip(instances, texts, strict=True)}


async def run_scaling(setup: Setup, options: BenchOptions, *, say: Say) -> dict[str, Any]:
    """The burst again with two instances of registration and notifications."""
    stack = setup.stack
    say("scaling: waiting for the instances to share the partitions")
    shares = await wait_for_shares(stack, timeout_s=90, say=say)
    registrations = stack.instances_of("registration")
    notifications = stack.instances_of("notifications")
    decided_metric = "solidarity_registration_submissions"
    sent_metric = "solidarity_notifications_sent"
    decided_before = await instance_counters(registrations, decided_metric)
    sent_before = await instance_counters(notifications, sent_metric)
    count = options.scaling_count
    async with watching(setup, count) as watch:
        await flood_and_drain(setup, watch, range(count), options, say=say, label="scaled burst")
        figures = burst_figures(watch, range(count), range(count, count), setup)
        if figures["lost"]:
            figures["unanswered"] = await trace_lost(setup, watch, range(count), say=say)
    decided_after = await instance_counters(registrations, decided_metric)
    sent_after = await instance_counters(notifications, sent_metric)
    shares_after = await wait_for_shares(stack, timeout_s=0, say=lambda _: None)
    answer_seconds = figures["flood"]["seconds_to_answer_all"] or 0.0
    mail_seconds = figures["flood"]["mail_seconds"] or 0.0

    def per_instance(
        instances: Sequence[Instance],
        before: dict[str, float],
        after: dict[str, float],
        topic_shares: dict[str, list[int]],
        later_shares: dict[str, list[int]],
        seconds: float,
    ) -> list[dict[str, Any]]:
        rows = []
        for instance in instances:
            done = after.get(instance.name, 0.0) - before.get(instance.name, 0.0)
            rows.append(
                {
                    "instance": instance.name,
                    "partitions": topic_shares.get(instance.name, []),
                    "partitions_at_end": later_shares.get(instance.name, []),
                    "count": int(done),
                    "per_s": round(done / seconds, 1) if seconds > 0 else 0.0,
                    "peak_rss_mb": figures["peak_rss_mb_by_process"].get(instance.name, 0.0),
                }
            )
        return rows

    return {
        "registrations": figures["registrations"],
        "decided_per_s": figures["decided_per_s"],
        "mails_per_s": figures["mails_per_s"],
        "mails": figures["mails"],
        "outcome_latency_p99_s": figures["flood"]["outcome_latency"]["p99_s"],
        "peak_rss_mb": figures["peak_rss_mb"],
        "lost": figures["lost"],
        "duplicated": figures["duplicated"],
        "mails_missing": figures["mails_missing"],
        "registration_instances": per_instance(
            registrations,
            decided_before,
            decided_after,
            shares["registration"],
            shares_after["registration"],
            answer_seconds,
        ),
        "notifications_instances": per_instance(
            notifications,
            sent_before,
            sent_after,
            shares["notifications"],
            shares_after["notifications"],
            mail_seconds,
        ),
    }


def new_run_tag() -> str:
    return uuid.uuid4().hex[:6]
