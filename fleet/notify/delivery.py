"""One delivery: its requests in order, each retried with exponential backoff on transport
errors, 429 and 5xx (not 501), all within the provider's timeout, as Flux's retryablehttp
client does (4 retries, waits 2 s doubling up to 30 s, ``Retry-After`` honoured).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from fleet.notify import registry
from fleet.notify.errors import DeliveryFailed
from fleet.notify.event import Event, event_key
from fleet.notify.request import Request, Response
from fleet.notify.spec import ProviderSpec
from fleet.notify.transport import Transport, built_host

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4
    """Attempts after the first; Flux's RetryMax."""
    wait_min: float = 2.0
    wait_max: float = 30.0

    def wait(self, retry: int, response: Response | None) -> float:
        """Before retry number ``retry`` (1-based): ``wait_min * 2**(retry-1)``, capped, or
        the answer's ``Retry-After`` seconds when it gives them (capped too)."""
        if response is not None and response.status in (429, 503):
            after = {k.lower(): v for k, v in response.headers.items()}.get("retry-after", "")
            if after.isdigit():
                return min(float(after), self.wait_max)
        return float(min(self.wait_min * 2.0 ** (retry - 1), self.wait_max))


DEFAULT_RETRY = RetryPolicy()


def retryable(status: int) -> bool:
    return status == 429 or (status >= 500 and status != 501)


@dataclass(frozen=True)
class Delivery:
    """What a notifier queues: the requests for one event to one provider, and how to send
    them. ``key`` is the event's identity for the duplicate window ("" never deduplicates)."""

    target: str
    requests: tuple[Request, ...]
    key: str = ""
    timeout: float = 15.0
    proxy: str = ""
    ca_pem: str = ""

    @classmethod
    def for_event(cls, target: str, spec: ProviderSpec, event: Event) -> Delivery:
        """Check the spec and build the requests of ``spec.type`` for ``event``. Raises
        ``InvalidProvider``/``UnsupportedProvider`` for the spec, ``EventNotApplicable`` for
        an event the provider cannot express; an empty ``requests`` means skipped."""
        provider = registry.provider(spec.type)
        provider.check(spec)
        return cls.of(target, spec, provider.build(event, spec), event_key(event))

    @classmethod
    def of(cls, target: str, spec: ProviderSpec, requests: Sequence[Request], key: str) -> Delivery:
        return cls(
            target,
            tuple(requests),
            key,
            spec.timeout.total_seconds(),
            spec.proxy,
            spec.ca_pem,
        )


@dataclass
class Attempts:
    """What one delivery took: requests answered and attempts made (retries included)."""

    attempts: int = 0
    answered: int = 0
    stopped_early: bool = False
    """A query step found the status already set; nothing was posted."""


async def deliver(
    delivery: Delivery,
    transport: Transport,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = anyio.sleep,
) -> Attempts:
    """Send ``delivery``; ``DeliveryFailed`` when a request is refused or the time is up."""
    done = Attempts()
    try:
        with anyio.fail_after(delivery.timeout):
            for request in delivery.requests:
                response = await _send_with_retries(
                    delivery, request, transport, policy, sleep, done
                )
                done.answered += 1
                if request.stop_if is not None and request.stop_if(response):
                    done.stopped_early = True
                    break
    except TimeoutError:
        raise DeliveryFailed(
            f"no answer within the timeout of {delivery.timeout:g}s ({done.attempts} attempt(s))",
            transient=True,
        ) from None
    return done


async def _send_with_retries(
    delivery: Delivery,
    request: Request,
    transport: Transport,
    policy: RetryPolicy,
    sleep: Sleep,
    done: Attempts,
) -> Response:
    where = f"{request.method} {built_host(request.url)}"
    last_response: Response | None = None
    for retry in range(policy.retries + 1):
        if retry:
            await sleep(policy.wait(retry, last_response))
        last_response = None
        done.attempts += 1
        try:
            response = await transport.send(
                request, timeout=delivery.timeout, proxy=delivery.proxy, ca_pem=delivery.ca_pem
            )
        except DeliveryFailed as error:
            if not error.transient or retry == policy.retries:
                raise DeliveryFailed(f"{where}: {error}", transient=error.transient) from error
            continue
        last_response = response
        if 200 <= response.status < 300 or response.status in request.accept_status:
            problem = request.check(response) if request.check else None
            if problem:
                raise DeliveryFailed(f"{where}: {problem}", status=response.status, transient=False)
            return response
        if not retryable(response.status) or retry == policy.retries:
            raise DeliveryFailed(
                f"{where}: request failed with status code {response.status}: "
                f"{_excerpt(response.body)}",
                status=response.status,
                transient=retryable(response.status),
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body.decode(errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
