"""What every command that talks to one cluster shares: the kubeconfig flags, the
connection, and turning failures into one clear line instead of a traceback."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
from kubernetes.aio.config.config_exception import ConfigException

from fleet.api import unit as unit_api
from fleet.kube import ApiUnavailable, KubeClient, KubeError, NotFound


class CliError(Exception):
    """A failure to report as ``✗ message`` and an exit code, never as a traceback."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        """None: the command's own error code (2 for ``fleet diff``, else 1)."""


def add_kube_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    group.add_argument("--context", help="kubeconfig context (default: the current one)")
    group.add_argument(
        "-n",
        "--namespace",
        default=unit_api.AGENT_NAMESPACE,
        help=f"the agent's namespace, where its Units live (default: {unit_api.AGENT_NAMESPACE})",
    )


def where(args: argparse.Namespace) -> str:
    """``context dev`` or ``the current context``, for messages about the connection."""
    return f"context {args.context}" if args.context else "the current context"


@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[KubeClient]:
    """A client for ``--kubeconfig``/``--context``, closed on exit."""
    problem = _missing_kubeconfig(args.kubeconfig)
    if problem:
        raise CliError(problem)
    try:
        client = await KubeClient.from_kubeconfig(args.kubeconfig, args.context)
    except (ConfigException, OSError, ValueError) as error:
        raise CliError(f"cannot load kubeconfig: {error}") from error
    try:
        yield client
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()


def _missing_kubeconfig(path: str | None) -> str | None:
    """Say plainly that no kubeconfig exists, before the library says it obscurely."""
    if path:
        return None if Path(path).expanduser().is_file() else f"kubeconfig {path} not found"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None  # in a pod: the service account
    candidates = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates = candidates or [str(Path.home() / ".kube" / "config")]
    if any(Path(p).expanduser().is_file() for p in candidates):
        return None
    return f"no kubeconfig found ({', '.join(candidates)}): pass --kubeconfig or set KUBECONFIG"


def describe_kube_error(error: KubeError, args: argparse.Namespace) -> str:
    if isinstance(error, ApiUnavailable):
        return f"cannot reach the Kubernetes API ({where(args)}): {error.message}"
    if isinstance(error, NotFound) and f'kind "{unit_api.KIND}"' in error.message:
        return (
            f"the Unit resource ({unit_api.PLURAL}.{unit_api.GROUP}) is not installed in "
            f"{where(args)}: is a fleet agent running in this cluster?"
        )
    return error.message


def run(
    main: Callable[[argparse.Namespace], Awaitable[int]],
    args: argparse.Namespace,
    *,
    error_code: int = 1,
) -> int:
    """Run an async command; failures print one line on stderr and exit ``error_code``."""
    try:
        return anyio.run(main, args)
    except CliError as error:
        fail(error.message)
        return error_code if error.code is None else error.code
    except KubeError as error:
        fail(describe_kube_error(error, args))
        return error_code


def progress(mark: str, message: str) -> None:
    """Flux's progress lines (``► annotating``, ``◎ waiting``, ``✔ applied``) on stderr."""
    print(f"{mark} {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    progress("✗", message)
