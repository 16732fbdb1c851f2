"""Real Kubernetes control planes as local processes, several at once.

Each cluster has its own etcd, a kube-apiserver with client-certificate authentication and
RBAC, kube-controller-manager, kube-scheduler and kwok, which plays the kubelet for fake
nodes so that Deployments really reach Available. Everything listens on 127.0.0.1 on free
ports. Clusters start in phases across the whole set (all etcds, then all API servers, then
the rest) so three clusters take little longer than one.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from fleet.localkube import kubeconfig, pki, ports, toolchain
from fleet.localkube.process import ManagedProcess, ProcessError, kill_recorded, wait_until

ADMIN_USER = "fleet-admin"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"

START_ATTEMPTS = 3
"""Starts retried when a port chosen for a component was taken before it could bind it."""

START_TIMEOUT = 180.0
"""Seconds to wait for each start phase; generous because two cores start three API servers."""


class ClusterError(RuntimeError):
    """A local cluster could not be started or reached."""


@dataclasses.dataclass(frozen=True)
class Ports:
    """The loopback ports one cluster listens on."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def allocate(cls) -> Ports:
        """Free ports (see ``fleet.localkube.ports`` for why not the kernel's choice)."""
        # Hold every socket open until all are chosen so no two fields get the same port.
        sockets = []
        try:
            for _ in dataclasses.fields(cls):
                sockets.append(ports.bind_free())
            return cls(*(s.getsockname()[1] for s in sockets))
        finally:
            for sock in sockets:
                sock.close()


def _https_get(url: str, context: ssl.SSLContext, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ssl.SSLError):
        return 0, b""


class LocalCluster:
    """One local control plane; ``directory`` holds its certificates, data, logs and PIDs."""

    def __init__(
        self, name: str, root: Path, *, nodes: int = 1, controller_qps: int | None = None
    ) -> None:
        self.name = name
        self.directory = root / name
        self.node_count = nodes
        self.controller_qps = controller_qps
        """The controller manager's API request rate (burst twice that); None keeps the
        upstream default of 20, which a thousand new Deployments wait on for minutes."""
        self.ports = Ports.allocate()
        self.processes: dict[str, ManagedProcess] = {}
        self._ca: pki.CertificateAuthority | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def record_path(self) -> Path:
        """A JSON file that lets a later process find this cluster (``fleet dev clusters``)."""
        return self.directory / "cluster.json"

    @property
    def pki_dir(self) -> Path:
        return self.directory / "pki"

    def kubeconfig(self) -> dict[str, object]:
        loaded: dict[str, object] = yaml.safe_load(self.kubeconfig_path.read_text())
        return loaded

    def prepare(self) -> None:
        """Stop leftovers of an earlier run in the same folder, then write certs and configs."""
        if self.directory.exists():
            kill_recorded(self.directory)
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        ca = pki.CertificateAuthority(self.pki_dir, f"fleet-local-{self.name}-ca")
        self._ca = ca
        ca.issue_serving("apiserver", ["127.0.0.1", "localhost", "kubernetes.default.svc"])
        pki.write_service_account_key(self.pki_dir / "service-account.key")
        self._write_kubeconfig(self.kubeconfig_path, ADMIN_USER, ("system:masters",), "admin")
        self.record_path.write_text(
            json.dumps(
                {"name": self.name, "server": self.server, "ports": dataclasses.asdict(self.ports)}
            )
        )
        for component in ("kube-controller-manager", "kube-scheduler"):
            self._write_kubeconfig(
                self.directory / f"{component}.kubeconfig", f"system:{component}", (), component
            )

    def _write_kubeconfig(self, path: Path, user: str, groups: tuple[str, ...], cert: str) -> Path:
        assert self._ca is not None, "prepare() first"
        pair = self._ca.issue_client(cert, user, groups)
        config = kubeconfig.kubeconfig_dict(
            self.name, self.server, self._ca.pair.cert_pem(), pair, user
        )
        return kubeconfig.write(path, config)

    def kubeconfig_for(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for another identity (for RBAC and impersonation tests)."""
        safe = "".join(c if c.isalnum() else "-" for c in user)
        return self._write_kubeconfig(
            self.directory / "users" / f"{safe}.kubeconfig", user, tuple(groups), f"user-{safe}"
        )

    def _process(self, name: str, binary: str, args: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, [str(toolchain.binary(binary)), *args], self.directory)
        self.processes[name] = process
        return process

    def start_etcd(self, *, die_with_parent: bool = True) -> None:
        p = self.ports
        peer = f"http://127.0.0.1:{p.etcd_peer}"
        client = f"http://127.0.0.1:{p.etcd_client}"
        self._process(
            "etcd",
            "etcd",
            [
                f"--name={self.name}",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={self.name}={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        ).start(die_with_parent=die_with_parent)

    def etcd_healthy(self) -> bool:
        status, body = _https_get(
            f"http://127.0.0.1:{self.ports.etcd_client}/health", ssl.create_default_context()
        )
        return status == 200 and b'"true"' in body

    def start_apiserver(self, *, die_with_parent: bool = True) -> None:
        pki_dir = self.pki_dir
        self._process(
            "kube-apiserver",
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports.apiserver}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
                f"--client-ca-file={pki_dir / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir / 'service-account.key'}",
                f"--service-account-signing-key-file={pki_dir / 'service-account.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
            ],
        ).start(die_with_parent=die_with_parent)

    def _admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def apiserver_ready(self) -> bool:
        status, _ = _https_get(f"{self.server}/readyz", self._admin_ssl_context())
        return status == 200

    def start_workers(self, *, die_with_parent: bool = True) -> None:
        """Start the controller manager, the scheduler and kwok (the fake kubelet)."""
        pki_dir = self.pki_dir
        cm_config = self.directory / "kube-controller-manager.kubeconfig"
        sched_config = self.directory / "kube-scheduler.kubeconfig"
        self._process(
            "kube-controller-manager",
            "kube-controller-manager",
            [
                f"--kubeconfig={cm_config}",
                f"--authentication-kubeconfig={cm_config}",
                f"--authorization-kubeconfig={cm_config}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports.controller_manager}",
                f"--cert-dir={self.directory / 'controller-manager-certs'}",
                f"--service-account-private-key-file={pki_dir / 'service-account.key'}",
                f"--root-ca-file={pki_dir / 'ca.crt'}",
                "--use-service-account-credentials=true",
                f"--cluster-name={self.name}",
                "--profiling=false",
                *(
                    [
                        f"--kube-api-qps={self.controller_qps}",
                        f"--kube-api-burst={2 * self.controller_qps}",
                    ]
                    if self.controller_qps
                    else []
                ),
            ],
        ).start(die_with_parent=die_with_parent)
        self._process(
            "kube-scheduler",
            "kube-scheduler",
            [
                f"--kubeconfig={sched_config}",
                f"--authentication-kubeconfig={sched_config}",
                f"--authorization-kubeconfig={sched_config}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports.scheduler}",
                f"--cert-dir={self.directory / 'scheduler-certs'}",
                "--profiling=false",
            ],
        ).start(die_with_parent=die_with_parent)
        self._process(
            "kwok",
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig_path}",
                # Our own config, never the user's ~/.kwok: kwok's "fast" node and pod
                # lifecycles, as kwokctl uses by default.
                f"--config={self._write_kwok_config()}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{self.ports.kwok}",
                "--node-lease-duration-seconds=40",
            ],
        ).start(die_with_parent=die_with_parent)

    def _write_kwok_config(self) -> Path:
        path = self.directory / "kwok.yaml"
        stages = toolchain.KWOK.path("stages.yaml").read_text()
        path.write_text(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
            "kind: KwokConfiguration\n"
            "options:\n"
            "  nodeLeaseParallelism: 4\n"
            "  nodePlayStageParallelism: 4\n"
            "  podPlayStageParallelism: 8\n"
            "  podsOnNodeSyncParallelism: 2\n"
            f"---\n{stages}"
        )
        return path

    def component_healthy(self, port: int) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        status, _ = _https_get(f"https://127.0.0.1:{port}/healthz", context)
        return status == 200

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """A raw admin request to the API server (no client library), for bring-up checks."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.server}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(
                request, context=self._admin_ssl_context(), timeout=10
            ) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def create_nodes(self) -> None:
        for index in range(self.node_count):
            status, body = self.request("POST", "/api/v1/nodes", fake_node(f"kwok-node-{index}"))
            if status not in (201, 409):
                raise ClusterError(
                    f"{self.name}: creating node kwok-node-{index} failed ({status}): {body}"
                )

    def nodes_ready(self) -> bool:
        status, body = self.request("GET", "/api/v1/nodes")
        if status != 200:
            return False
        ready = [
            node
            for node in body["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.node_count

    def controller_manager_ready(self) -> bool:
        return (
            self.component_healthy(self.ports.controller_manager)
            and self.default_service_account_exists()
        )

    def scheduler_ready(self) -> bool:
        return self.component_healthy(self.ports.scheduler)

    def default_service_account_exists(self) -> bool:
        # The service-account controller creates it: proof the controller manager works.
        status, _ = self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200

    def stop(self) -> None:
        """Stop every process, newest first, and wait for each to exit."""
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()

    def pids(self) -> dict[str, int]:
        return {
            name: p.pid for name, p in self.processes.items() if p.pid is not None and p.alive()
        }

    def memory_bytes(self) -> int:
        """Resident memory of all this cluster's processes together."""
        return sum(rss_bytes(pid) for pid in self.pids().values())


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fake_node(name: str) -> dict[str, Any]:
    """A Node that kwok manages: annotated for kwok, untainted, with room for many pods."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "1000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"capacity": resources, "allocatable": resources, "phase": "Running"},
    }


def _phase(
    clusters: Sequence[LocalCluster],
    what: str,
    check_name: str,
    process_names: Sequence[str],
    progress: bool,
) -> None:
    started = time.monotonic()
    for cluster in clusters:
        wait_until(
            getattr(cluster, check_name),
            timeout=START_TIMEOUT,
            what=f"{what} of cluster {cluster.name}",
            processes=[cluster.processes[n] for n in process_names],
        )
    if progress:
        names = ", ".join(c.name for c in clusters)
        print(f"    {what}: ready in {time.monotonic() - started:.1f}s ({names})", flush=True)


def start_clusters(
    names: Iterable[str],
    root: Path,
    *,
    nodes: int = 1,
    die_with_parent: bool = True,
    progress: bool = False,
    controller_qps: int | None = None,
) -> list[LocalCluster]:
    """Start one control plane per name under ``root``; stops them all if any fails.

    ``die_with_parent=False`` leaves them running after this process exits (the CLI's
    ``up``); ``stop_clusters`` or ``kill_recorded(root)`` stops them later.
    ``controller_qps`` raises the controller manager's request rate (benchmarks).
    """
    missing = [
        t.name for t in (toolchain.KUBERNETES, toolchain.ETCD, toolchain.KWOK) if not t.is_built()
    ]
    if missing:
        raise ClusterError(
            f"binaries not built: {', '.join(missing)}; run `make k8s-bin` "
            "(or `python -m fleet.localkube.toolchain`)"
        )
    names = list(names)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return _start(names, root, nodes, die_with_parent, progress, controller_qps)
        except ProcessError as error:
            if "address already in use" not in str(error) or attempt == START_ATTEMPTS:
                raise
            if progress:
                print("    a port was taken meanwhile; starting again on other ports", flush=True)
    raise AssertionError("unreachable")


def _start(
    names: list[str],
    root: Path,
    nodes: int,
    die_with_parent: bool,
    progress: bool,
    controller_qps: int | None,
) -> list[LocalCluster]:
    clusters = [
        LocalCluster(name, root, nodes=nodes, controller_qps=controller_qps) for name in names
    ]
    try:
        for cluster in clusters:
            cluster.prepare()
            cluster.start_etcd(die_with_parent=die_with_parent)
        _phase(clusters, "etcd", "etcd_healthy", ["etcd"], progress)
        for cluster in clusters:
            cluster.start_apiserver(die_with_parent=die_with_parent)
        _phase(clusters, "kube-apiserver", "apiserver_ready", ["etcd", "kube-apiserver"], progress)
        for cluster in clusters:
            cluster.start_workers(die_with_parent=die_with_parent)
            cluster.create_nodes()
        everything = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
        _phase(clusters, "kwok nodes", "nodes_ready", everything, progress)
        _phase(clusters, "controller-manager", "controller_manager_ready", everything, progress)
        _phase(clusters, "scheduler", "scheduler_ready", everything, progress)
    except BaseException:
        stop_clusters(clusters)
        raise
    if die_with_parent:
        _live.update(clusters)
    return clusters


def stop_clusters(clusters: Iterable[LocalCluster]) -> None:
    for cluster in list(clusters):
        cluster.stop()
        _live.discard(cluster)


_live: set[LocalCluster] = set()
"""Clusters this process started to die with it; stopped at interpreter exit as a backstop."""
atexit.register(lambda: stop_clusters(_live))


@contextlib.contextmanager
def running_clusters(
    names: Iterable[str], root: Path, **options: Any
) -> Iterator[list[LocalCluster]]:
    """``start_clusters`` as a context manager that always stops them, also on Ctrl-C."""
    clusters = start_clusters(names, root, **options)
    try:
        yield clusters
    finally:
        stop_clusters(clusters)


__all__ = [
    "ClusterError",
    "LocalCluster",
    "ProcessError",
    "running_clusters",
    "start_clusters",
    "stop_clusters",
]
