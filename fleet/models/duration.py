"""Go duration strings (``10m``, ``1h30m``, ``1.5s``) as Flux's API writes them.

Kubernetes serialises ``metav1.Duration`` with Go's ``time.ParseDuration`` and
``Duration.String``; users copy these strings between Flux objects and fleet, so fleet
reads and writes exactly that syntax rather than ISO 8601.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal, InvalidOperation

_NANOSECONDS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}

_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string is not a Go duration."""


def parse_duration(text: str) -> datetime.timedelta:
    """Parse a Go duration (``"1h30m"``, ``"-1.5s"``, ``"0"``) into a timedelta.

    Precision below a microsecond is dropped, as timedelta cannot hold it.
    """
    original = text
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return datetime.timedelta(0)
    if not text:
        raise DurationError(f'invalid duration "{original}"')
    nanoseconds = Decimal(0)
    position = 0
    while position < len(text):
        match = _COMPONENT.match(text, position)
        if match is None:
            raise DurationError(f'invalid duration "{original}"')
        number, unit = match.groups()
        try:
            nanoseconds += Decimal(number) * _NANOSECONDS_PER_UNIT[unit]
        except InvalidOperation as error:
            raise DurationError(f'invalid duration "{original}"') from error
        position = match.end()
    microseconds = int(nanoseconds // 1000)
    try:
        return sign * datetime.timedelta(microseconds=microseconds)
    except OverflowError as error:
        raise DurationError(f'invalid duration "{original}": out of range') from error


def format_duration(value: datetime.timedelta) -> str:
    """Format like Go's ``Duration.String``: ``1h30m0s``, ``1.5s``, ``250ms``, ``0s``."""
    total_us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if total_us == 0:
        return "0s"
    sign = "-" if total_us < 0 else ""
    total_us = abs(total_us)
    if total_us < 1_000_000:
        if total_us % 1000 == 0:
            return f"{sign}{total_us // 1000}ms"
        if total_us < 1000:
            return f"{sign}{total_us}µs"
        return f"{sign}{_trim_fraction(total_us, 1000)}ms"
    hours, rest_us = divmod(total_us, 3600 * 1_000_000)
    minutes, rest_us = divmod(rest_us, 60 * 1_000_000)
    seconds = _trim_fraction(rest_us, 1_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim_fraction(amount: int, per_unit: int) -> str:
    whole, fraction = divmod(amount, per_unit)
    if not fraction:
        return str(whole)
    digits = len(str(per_unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")
