"""Delivery through ``fleet.notify.Notifier`` to a real HTTP receiver on loopback when things go
wrong: a receiver that fails then recovers, one that refuses connections then comes back, one
that never answers, a permanent refusal, duplicates and a full queue."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from fleet.localkube.gitserver import HOST, free_port
from fleet.notify import (
    Delivery,
    Event,
    InvolvedObject,
    Notifier,
    Outcome,
    ProviderSpec,
    RetryPolicy,
)
from tests.integration.test_hub_cli import self_signed
from tests.notifyreceiver import RecordingReceiver, recording_receiver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

FAST = RetryPolicy(retries=4, wait_min=0.05, wait_max=0.4)


def event(message: str = "apply failed") -> Event:
    return Event(
        InvolvedObject("Kustomization", "apps", "flux-system", uid="u-1"),
        "error",
        datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC),
        message,
        "ReconciliationFailed",
        "kustomize-controller",
        {"revision": "main@sha1:" + "a" * 40},
    )


def delivery(
    receiver: RecordingReceiver,
    path: str = "/hook",
    *,
    target: str = "hook",
    message: str = "apply failed",
    timeout: float = 10,
    address: str = "",
    proxy: str = "",
    ca_pem: str = "",
) -> Delivery:
    spec = ProviderSpec(
        "generic-hmac",
        address or f"{receiver.url}{path}",
        token="key",
        timeout=datetime.timedelta(seconds=timeout),
        proxy=proxy,
        ca_pem=ca_pem,
    )
    return Delivery.for_event(target, spec, event(message))


@dataclass
class Running:
    notifier: Notifier | None = None
    outcomes: list[tuple[str, Outcome, str]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    """Every backoff wait the notifier started, in seconds."""

    def of(self, target: str) -> list[Outcome]:
        return [outcome for name, outcome, _ in self.outcomes if name == target]


@asynccontextmanager
async def running_notifier(
    *, retry: RetryPolicy = FAST, dedupe_seconds: float = 0, queue_size: int = 100
) -> AsyncIterator[Running]:
    running = Running()

    async def sleep(seconds: float) -> None:
        running.waits.append(seconds)
        await anyio.sleep(seconds)

    notifier = Notifier(
        retry=retry,
        dedupe_seconds=dedupe_seconds,
        queue_size=queue_size,
        on_outcome=lambda t, o, d: running.outcomes.append((t, o, d)),
        sleep=sleep,
    )
    running.notifier = notifier
    async with anyio.create_task_group() as group:
        await group.start(notifier.run)
        try:
            yield running
        finally:
            group.cancel_scope.cancel()


def notifier(running: Running) -> Notifier:
    assert running.notifier is not None
    return running.notifier


async def until(check: Callable[[], object], what: str, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as running:
        yield running


async def test_a_receiver_that_fails_then_recovers_gets_the_event_once(
    receiver: RecordingReceiver,
) -> None:
    receiver.answer("/hook", statuses=[500, 429])
    async with running_notifier() as running:
        assert notifier(running).submit(delivery(receiver)) is True
        await until(lambda: running.of("hook"), "an outcome")

    assert running.of("hook") == [Outcome.SENT]
    attempts = receiver.to("/hook")
    assert len(attempts) == 3, "two refusals, then the one that was accepted"
    assert len({(a.body, a.headers["x-signature"]) for a in attempts}) == 1, "the same request"
    assert running.waits == [0.05, 0.1], "exponential backoff"


async def test_connection_refused_then_back_is_retried_until_it_arrives(
    receiver: RecordingReceiver,
) -> None:
    receiver.stop()
    patient = RetryPolicy(retries=6, wait_min=0.2, wait_max=1.0)
    async with running_notifier(retry=patient) as running:
        notifier(running).submit(delivery(receiver))
        await until(lambda: running.waits, "a first refused attempt")
        receiver.start()  # the same port again
        await until(lambda: running.of("hook"), "an outcome")

    assert running.of("hook") == [Outcome.SENT]
    assert len(receiver.to("/hook")) == 1
    assert running.waits, "at least one retry after the refusal"


async def test_a_hung_receiver_times_out_and_holds_up_no_other_target(
    receiver: RecordingReceiver,
) -> None:
    receiver.answer("/hang", hang=True)
    async with running_notifier() as running:
        assert notifier(running).submit(delivery(receiver, "/hang", target="hung", timeout=5))
        await until(lambda: receiver.to("/hang"), "the hung request to arrive")
        assert notifier(running).submit(delivery(receiver, "/ok", target="ok"))
        await until(lambda: running.of("ok"), "the other target's outcome")
        assert running.of("ok") == [Outcome.SENT]
        assert running.of("hung") == [], "still waiting on its own receiver"
        await until(lambda: running.of("hung"), "the hung delivery to time out")

    assert running.of("hung") == [Outcome.FAILED]
    detail = next(d for t, _, d in running.outcomes if t == "hung")
    assert "timeout of 5s" in detail
    assert len(receiver.to("/hang")) == 1, "the timeout bounds the retries too"
    assert notifier(running).failures["hung"].message == detail
    assert notifier(running).counts == {("ok", Outcome.SENT): 1, ("hung", Outcome.FAILED): 1}


async def test_a_permanent_refusal_is_not_retried(receiver: RecordingReceiver) -> None:
    receiver.answer("/hook", status=400, body={"error": "bad payload"})
    async with running_notifier() as running:
        notifier(running).submit(delivery(receiver))
        await until(lambda: running.of("hook"), "an outcome")

    assert running.of("hook") == [Outcome.FAILED]
    assert "status code 400" in running.outcomes[0][2] and "bad payload" in running.outcomes[0][2]
    assert len(receiver.to("/hook")) == 1


async def test_the_same_event_within_the_window_is_sent_once(receiver: RecordingReceiver) -> None:
    async with running_notifier(dedupe_seconds=300) as running:
        assert notifier(running).submit(delivery(receiver)) is True
        assert notifier(running).submit(delivery(receiver)) is False
        assert notifier(running).submit(delivery(receiver, message="another failure")) is True
        await until(lambda: running.of("hook").count(Outcome.SENT) == 2, "two deliveries")

    messages = [r.json()["message"] for r in receiver.to("/hook")]
    assert messages == ["apply failed", "another failure"]
    assert running.of("hook") == [Outcome.DUPLICATE, Outcome.SENT, Outcome.SENT]


async def test_a_full_queue_drops_new_deliveries(receiver: RecordingReceiver) -> None:
    receiver.answer("/hang", hang=True)
    async with running_notifier(queue_size=1) as running:
        notifier(running).submit(delivery(receiver, "/hang", message="first"))
        await until(lambda: receiver.to("/hang"), "the worker to be busy")
        assert notifier(running).submit(delivery(receiver, "/hang", message="queued")) is True
        assert notifier(running).submit(delivery(receiver, "/hang", message="dropped")) is False
        assert running.of("hook") == [Outcome.DROPPED]
        receiver.release()
        await until(lambda: running.of("hook").count(Outcome.SENT) == 2, "both to arrive")

    assert [r.json()["message"] for r in receiver.to("/hang")] == ["first", "queued"]


async def test_a_private_ca_is_trusted_when_given_and_only_then(tmp_path: Path) -> None:
    certificate, key = self_signed(tmp_path)
    with recording_receiver(tls=(certificate, key)) as tls:
        async with running_notifier() as running:
            notifier(running).submit(
                delivery(tls, target="trusting", ca_pem=certificate.read_text())
            )
            notifier(running).submit(delivery(tls, target="system-cas"))
            await until(lambda: running.of("trusting") and running.of("system-cas"), "outcomes")

    assert running.of("trusting") == [Outcome.SENT]
    assert running.of("system-cas") == [Outcome.FAILED]
    detail = next(d for t, _, d in running.outcomes if t == "system-cas")
    assert "CERTIFICATE_VERIFY_FAILED" in detail
    assert len(tls.to("/hook")) == 1, "only the trusting client's request was read"


async def test_a_proxy_carries_the_request(receiver: RecordingReceiver) -> None:
    nowhere = f"http://{HOST}:{free_port()}/hook"  # nothing listens: only the proxy can answer
    async with running_notifier() as running:
        notifier(running).submit(delivery(receiver, address=nowhere, proxy=receiver.url))
        await until(lambda: running.of("hook"), "an outcome")

    assert running.of("hook") == [Outcome.SENT]
    (forwarded,) = receiver.requests
    assert forwarded.target == nowhere, "the absolute form a client sends its proxy"
