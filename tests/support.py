"""Small helpers for tests that wait on real systems."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


ALLOW_SKIPS_VARIABLE = "FLEET_ALLOW_SKIPS"


def skips_allowed() -> bool:
    """Whether this run may skip tests whose system dependency is missing.

    Only ``FLEET_ALLOW_SKIPS=1``, a developer's explicit opt-out on a laptop, allows it;
    CI never sets it, so a run with part of the product untested cannot be green.
    """
    return os.environ.get(ALLOW_SKIPS_VARIABLE) == "1"


def require(missing: str | None) -> None:
    """Fail the test naming the missing dependency (``missing``: why it cannot run, with how
    to get it), or skip it when ``FLEET_ALLOW_SKIPS=1``; nothing when ``missing`` is None."""
    if missing is None:
        return
    if skips_allowed():
        pytest.skip(f"{missing} ({ALLOW_SKIPS_VARIABLE}=1)")
    pytest.fail(
        f"missing system dependency: {missing}. "
        f"Set {ALLOW_SKIPS_VARIABLE}=1 to skip such tests on a developer machine.",
        pytrace=False,
    )
