"""Printing results the way kubectl and flux do: aligned tables, or ``-o json|yaml``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import yaml

from fleet import untrusted

OUTPUT_FORMATS = ("table", "json", "yaml")


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default="table",
        help="output format (default: table)",
    )


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO | None = None
) -> None:
    """Columns separated by three spaces, upper-case headers, as ``kubectl get`` prints.

    Cells come from clusters and repositories: control characters are replaced, so a
    value cannot move the cursor, retitle the terminal or break the table's lines."""
    stream = stream or sys.stdout
    cells = [[str(h).upper() for h in headers]] + [
        [untrusted.printable(str(c)) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        stream.write(
            "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def print_structured(
    data: Mapping[str, Any] | Sequence[Any], fmt: str, stream: TextIO | None = None
) -> None:
    stream = stream or sys.stdout
    if fmt == "json":
        stream.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        stream.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
