"""Which reconcile results become Events: each change, not each repeat, rate-limited."""

from __future__ import annotations

from agent.events import EventFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_every_new_failure_message_is_recorded_and_repeats_are_not() -> None:
    events = EventFilter(clock=Clock())
    assert events.admit("u", "Normal", "Progressing", "source has no revision yet: fetching")
    assert events.admit("u", "Warning", "BuildFailed", "kustomization.yaml: bad")
    assert not events.admit("u", "Warning", "BuildFailed", "kustomization.yaml: bad")
    assert events.admit("u", "Warning", "BuildFailed", "kustomization.yaml: worse")
    assert events.admit("other", "Warning", "BuildFailed", "kustomization.yaml: worse")


def test_a_flapping_unit_is_rate_limited_and_recovers_over_time() -> None:
    clock = Clock()
    events = EventFilter(burst=3, refill_seconds=300, clock=clock)
    admitted = [events.admit("u", "Warning", "Failed", f"error {i % 2}") for i in range(6)]
    assert admitted == [True, True, True, False, False, False]
    clock.now = 300
    assert events.admit("u", "Warning", "Failed", "error 9")
    assert not events.admit("u", "Warning", "Failed", "error 8")
