"""The verbs people use on one cluster's units, in the manner of the flux CLI:

``fleet get units``, ``fleet reconcile``, ``fleet suspend``, ``fleet resume``,
``fleet events``, ``fleet tree`` and ``fleet diff``.

They talk to the agent only through its Unit objects: reading their status, and
setting the annotations the agent watches (``reconcile.fleet.dev/requestedAt``,
``reconcile.fleet.dev/withSource``, ``fleet.dev/suspended``).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from fleet import untrusted
from fleet.api import unit as unit_api
from fleet.cli import kubeargs, output, unitdiff, unitview
from fleet.cli.kubeargs import CliError, progress
from fleet.kube import Gone, KubeClient
from fleet.models import DurationError, format_duration, parse_duration

Object = dict[str, Any]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

FIELD_MANAGER = "fleet-cli"
"""Who set an annotation, as ``managedFields`` shows it; never the agent's own manager."""
DEFAULT_TIMEOUT = "5m"
POLL_SECONDS = 0.5
"""How often a waiting command reads the Unit: quick enough to feel immediate."""


def register(subparsers: SubParsers) -> None:
    """The top-level verbs; ``fleet get units`` comes through :func:`register_get_units`."""
    reconcile = subparsers.add_parser(
        "reconcile",
        help="ask the agent to reconcile a unit now and wait for the result",
        description="Annotate the unit with reconcile.fleet.dev/requestedAt, then wait until "
        "the agent has handled that request. Exits 1 when the unit ends not Ready.",
    )
    reconcile.add_argument(
        "name", nargs="?", metavar="NAME", help="unit: root (default), NAMESPACE/NAME or NAME"
    )
    reconcile.add_argument("--all", action="store_true", help="every unit that is not suspended")
    reconcile.add_argument(
        "--with-source",
        action="store_true",
        help="fetch the unit's Git source first, so a commit pushed just now is applied",
    )
    _add_timeout(reconcile)
    kubeargs.add_kube_flags(reconcile)
    reconcile.set_defaults(func=lambda args: kubeargs.run(_reconcile, args))

    suspend = subparsers.add_parser(
        "suspend",
        help="stop the agent reconciling a unit (and healing its drift)",
        description="Set fleet.dev/suspended on the unit: the agent neither applies new "
        "revisions nor reverts drift until `fleet resume`.",
    )
    suspend.add_argument("name", metavar="NAME", help="unit: root, NAMESPACE/NAME or NAME")
    kubeargs.add_kube_flags(suspend)
    suspend.set_defaults(func=lambda args: kubeargs.run(_suspend, args))

    resume = subparsers.add_parser(
        "resume",
        help="resume a suspended unit and wait for its reconcile",
        description="Remove fleet.dev/suspended and ask for a reconcile, then wait for it, "
        "as `flux resume` does. Exits 1 when the unit ends not Ready.",
    )
    resume.add_argument("name", metavar="NAME", help="unit: root, NAMESPACE/NAME or NAME")
    _add_timeout(resume)
    kubeargs.add_kube_flags(resume)
    resume.set_defaults(func=lambda args: kubeargs.run(_resume, args))

    events = subparsers.add_parser(
        "events",
        help="the agent's Events about units, oldest first",
        description="Kubernetes Events the agent recorded on its Units (applies, failures, "
        "drift corrections), oldest first.",
    )
    events.add_argument("name", nargs="?", metavar="NAME", help="only this unit's events")
    events.add_argument(
        "--types",
        help="comma-separated event types to show, e.g. Warning (default: all)",
    )
    events.add_argument("-w", "--watch", action="store_true", help="keep printing new events")
    output.add_output_flag(events)
    kubeargs.add_kube_flags(events)
    events.set_defaults(func=lambda args: kubeargs.run(_events, args))

    tree = subparsers.add_parser(
        "tree",
        help="what a unit owns, and its child units, as a tree",
        description="The objects in a unit's inventory, with the child units it defines "
        "nested under it with their own inventories.",
    )
    tree.add_argument(
        "name", nargs="?", default=unit_api.ROOT_UNIT, metavar="NAME", help="unit (default: root)"
    )
    output.add_output_flag(tree)
    kubeargs.add_kube_flags(tree)
    tree.set_defaults(func=lambda args: kubeargs.run(_tree, args))

    unitdiff.register(subparsers)


def register_get_units(get_subparsers: SubParsers) -> None:
    """``fleet get units`` (also ``kustomizations``, ``ks``), for the ``get`` group."""
    units = get_subparsers.add_parser(
        "units",
        aliases=["kustomizations", "ks"],
        help="the units of one cluster and how they are doing",
        description="The agent's units (the cluster path as `root`, and every Kustomization "
        "it carries out) with readiness, applied revision, object and drift counts.",
    )
    units.add_argument("name", nargs="?", metavar="NAME", help="show only this unit")
    units.add_argument("-w", "--watch", action="store_true", help="keep printing changes")
    output.add_output_flag(units)
    kubeargs.add_kube_flags(units)
    units.set_defaults(func=lambda args: kubeargs.run(_get_units, args))


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        default=DEFAULT_TIMEOUT,
        help=f"how long to wait for the agent, Go duration (default: {DEFAULT_TIMEOUT})",
    )


def _timeout_seconds(args: argparse.Namespace) -> float:
    try:
        return parse_duration(args.timeout).total_seconds()
    except DurationError as error:
        raise CliError(f"--timeout: {error}") from error


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def request_stamp() -> str:
    """RFC 3339 with microseconds: two requests in one second must still differ."""
    return _now().isoformat(timespec="microseconds").replace("+00:00", "Z")


async def list_units(client: KubeClient, namespace: str) -> tuple[list[Object], str]:
    """Every Unit of the agent's namespace, and the list's resourceVersion for a watch."""
    return await client.list(unit_api.API_VERSION, unit_api.KIND, namespace)


async def find_unit(client: KubeClient, namespace: str, name: str) -> Object:
    units, _ = await list_units(client, namespace)
    try:
        return dict(unitview.find_unit(units, name, namespace))
    except unitview.UnitLookupError as error:
        raise CliError(str(error)) from error


async def annotate(
    client: KubeClient, namespace: str, unit: Mapping[str, Any], annotations: dict[str, str | None]
) -> None:
    """Set (or, with None, remove) annotations on a Unit with a merge patch."""
    name = unit["metadata"]["name"]
    info = await client.resource(unit_api.API_VERSION, unit_api.KIND)
    await client.request(
        "PATCH",
        info.path(namespace, name),
        body={"metadata": {"annotations": annotations}},
        query={"fieldManager": FIELD_MANAGER},
        content_type="application/merge-patch+json",
        what=f"annotate Unit {name} in namespace {namespace}",
    )


def handled(unit: Mapping[str, Any], requested: str) -> bool:
    """Whether the agent finished the reconcile asked for at ``requested``."""
    status = unit.get("status") or {}
    ready = unit_api.ready_condition(status)
    return (
        status.get("lastHandledReconcileAt") == requested
        and ready is not None
        and ready.get("status") != "Unknown"
    )


async def wait_handled(
    client: KubeClient, namespace: str, unit: Mapping[str, Any], requested: str, deadline: float
) -> Object:
    """The Unit once the agent has handled ``requested``; CliError on timeout or deletion."""
    resource = unit["metadata"]["name"]
    name = unitview.unit_name(unit)
    while True:
        current = await client.get(unit_api.API_VERSION, unit_api.KIND, resource, namespace)
        if current is None:
            raise CliError(f"unit '{name}' was deleted from namespace {namespace} while waiting")
        if handled(current, requested):
            return current
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            raise CliError(
                f"unit '{name}' was not reconciled in time: the agent has not handled the "
                f"request of {requested}; is it running? (`fleet events {name}`)"
            )
        await anyio.sleep(min(POLL_SECONDS, remaining))


def report_result(unit: Mapping[str, Any], *, with_name: bool = False) -> bool:
    """Print how a waited-for reconcile ended; True when the unit is Ready."""
    status = unit.get("status") or {}
    ready = unit_api.ready_condition(status) or {}
    prefix = f"{unitview.unit_name(unit)}: " if with_name else ""
    if ready.get("status") == "True":
        revision = unit_api.short_revision(status.get("lastAppliedRevision"))
        progress("✔", f"{prefix}applied revision {revision}")
        for warning in status.get("warnings") or []:
            progress("⚠", f"{prefix}{warning}")
        return True
    reason = ready.get("reason") or "NotReady"
    kubeargs.fail(f"{prefix}{reason}: {ready.get('message') or 'no message'}")
    return False


async def _get_units(args: argparse.Namespace) -> int:
    async with kubeargs.connect(args) as client:
        units, version = await list_units(client, args.namespace)
        if args.name:
            try:
                units = [dict(unitview.find_unit(units, args.name, args.namespace))]
            except unitview.UnitLookupError as error:
                raise CliError(str(error)) from error
        units = [dict(u) for u in unitview.sort_units(units)]
        if args.output != "table":
            output.print_structured([unitview.unit_summary(u) for u in units], args.output)
            return 0
        if units:
            now = _now()
            output.print_table(
                unitview.UnitRow.HEADERS, [unitview.UnitRow.of(u, now).cells() for u in units]
            )
        elif not args.watch:
            print(f"No units found in {args.namespace} namespace.", file=sys.stderr)
            return 0
        if args.watch:
            only = units[0]["metadata"]["name"] if args.name else None
            await _watch_units(client, args.namespace, version, only)
    return 0


async def _watch_units(client: KubeClient, namespace: str, version: str, only: str | None) -> None:
    """Print a row per change until interrupted, as ``kubectl get -w`` does."""
    while True:
        try:
            async for event in client.watch(
                unit_api.API_VERSION, unit_api.KIND, namespace, resource_version=version
            ):
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                if event.type == "BOOKMARK":
                    continue
                if only and event.object["metadata"]["name"] != only:
                    continue
                cells = unitview.UnitRow.of(event.object, _now()).cells()
                if event.type == "DELETED":
                    cells[1] = "Deleted"
                print(untrusted.printable("   ".join(cells).rstrip()), flush=True)
        except Gone:
            _, version = await list_units(client, namespace)


async def _reconcile(args: argparse.Namespace) -> int:
    timeout = _timeout_seconds(args)
    if args.all and args.name:
        raise CliError("give a unit NAME or --all, not both")
    async with kubeargs.connect(args) as client:
        units, _ = await list_units(client, args.namespace)
        if args.all:
            targets = [u for u in unitview.sort_units(units) if not unitview.is_suspended(u)]
            for skipped in [u for u in units if unitview.is_suspended(u)]:
                progress("⚠", f"skipping suspended unit '{unitview.unit_name(skipped)}'")
            if not targets:
                raise CliError(f"no units to reconcile in namespace {args.namespace}")
        else:
            try:
                target = unitview.find_unit(units, args.name or unit_api.ROOT_UNIT, args.namespace)
            except unitview.UnitLookupError as error:
                raise CliError(str(error)) from error
            if unitview.is_suspended(target):
                name = unitview.unit_name(target)
                raise CliError(f"unit '{name}' is suspended; `fleet resume {name}` resumes it")
            targets = [target]
        return await _request_and_wait(
            client, args.namespace, targets, timeout, with_source=args.with_source
        )


async def _request_and_wait(
    client: KubeClient,
    namespace: str,
    targets: Sequence[Mapping[str, Any]],
    timeout: float,
    *,
    with_source: bool,
    extra: Mapping[str, str | None] | None = None,
) -> int:
    """Annotate each unit with one requestedAt, wait for all, report; the exit code."""
    requested = request_stamp()
    annotations: dict[str, str | None] = {
        unit_api.REQUESTED_AT_ANNOTATION: requested,
        unit_api.WITH_SOURCE_ANNOTATION: "true" if with_source else None,
        **(extra or {}),
    }
    for target in targets:
        source = " (with source)" if with_source else ""
        progress(
            "►",
            f"annotating Unit {unitview.unit_name(target)} in namespace {namespace}{source}",
        )
        await annotate(client, namespace, target, annotations)
    progress("✔", "Unit annotated" if len(targets) == 1 else f"{len(targets)} Units annotated")
    progress("◎", "waiting for reconcile")
    deadline = anyio.current_time() + timeout
    ok = True
    for target in targets:
        try:
            done = await wait_handled(client, namespace, target, requested, deadline)
        except CliError as error:
            error.message += f" (waited {format_duration(datetime.timedelta(seconds=timeout))})"
            raise
        fetched = (done.get("status") or {}).get("source")
        if with_source and fetched and fetched.get("ready") is False:
            kubeargs.fail(f"fetch of {fetched.get('url')} failed: {fetched.get('message')}")
            ok = False
        elif with_source and fetched and fetched.get("revision"):
            progress("✔", f"fetched revision {unit_api.short_revision(fetched['revision'])}")
        ok = report_result(done, with_name=len(targets) > 1) and ok
    return 0 if ok else 1


async def _suspend(args: argparse.Namespace) -> int:
    async with kubeargs.connect(args) as client:
        unit = await find_unit(client, args.namespace, args.name)
        name = unitview.unit_name(unit)
        progress("►", f"suspending Unit {name} in namespace {args.namespace}")
        await annotate(client, args.namespace, unit, {unit_api.SUSPEND_ANNOTATION: "true"})
        progress("✔", "Unit suspended")
    return 0


async def _resume(args: argparse.Namespace) -> int:
    timeout = _timeout_seconds(args)
    async with kubeargs.connect(args) as client:
        unit = await find_unit(client, args.namespace, args.name)
        name = unitview.unit_name(unit)
        progress("►", f"resuming Unit {name} in namespace {args.namespace}")
        return await _request_and_wait(
            client,
            args.namespace,
            [unit],
            timeout,
            with_source=False,
            extra={unit_api.SUSPEND_ANNOTATION: None},
        )


def _event_types(args: argparse.Namespace) -> set[str] | None:
    if not args.types:
        return None
    return {t.strip().lower() for t in args.types.split(",") if t.strip()}


async def _events(args: argparse.Namespace) -> int:
    types = _event_types(args)
    async with kubeargs.connect(args) as client:
        resource = None
        if args.name:
            resource = (await find_unit(client, args.namespace, args.name))["metadata"]["name"]

        def wanted(event: Mapping[str, Any]) -> bool:
            kind = str(event.get("type", "")).lower()
            return unitview.is_unit_event(event, resource) and (types is None or kind in types)

        items, version = await client.list("v1", "Event", args.namespace)
        selected = sorted((e for e in items if wanted(e)), key=unitview.event_time)
        if args.output != "table":
            output.print_structured([unitview.event_summary(e) for e in selected], args.output)
            return 0
        now = _now()
        if selected:
            output.print_table(
                unitview.EVENT_HEADERS, [unitview.event_row(e, now) for e in selected]
            )
        elif not args.watch:
            print(f"No events found in {args.namespace} namespace.", file=sys.stderr)
        if args.watch:
            await _watch_events(client, args.namespace, version, wanted)
    return 0


async def _watch_events(
    client: KubeClient,
    namespace: str,
    version: str,
    wanted: Callable[[Mapping[str, Any]], bool],
) -> None:
    while True:
        try:
            async for event in client.watch("v1", "Event", namespace, resource_version=version):
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                if event.type in ("ADDED", "MODIFIED") and wanted(event.object):
                    row = unitview.event_row(event.object, _now())
                    print(untrusted.printable("   ".join(row).rstrip()), flush=True)
        except Gone:
            _, version = await client.list("v1", "Event", namespace)


async def _tree(args: argparse.Namespace) -> int:
    async with kubeargs.connect(args) as client:
        units, _ = await list_units(client, args.namespace)
        try:
            unit = unitview.find_unit(units, args.name, args.namespace)
        except unitview.UnitLookupError as error:
            raise CliError(str(error)) from error
        if args.output != "table":
            output.print_structured(unitview.tree_summary(unit, units), args.output)
            return 0
        for line in unitview.render_tree(unitview.unit_tree(unit, units)):
            print(untrusted.printable(line))
    return 0
