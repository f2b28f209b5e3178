"""KubeletSimulator: the kubelet side of the device-plugin API, for tests, demos and benches.

Does what kubelet's device manager does (pkg/kubelet/cm/devicemanager): serves
``Registration`` on ``<dir>/kubelet.sock`` after cleaning the dir of plugin
sockets, dials each registering plugin inside ``Register``, reads its options,
consumes ``ListAndWatch`` (capacity = all, allocatable = ``Healthy``), and
allocates like kubelet (preferred allocation, then one Allocate per container).
Also serves pod-resources v1 from those allocations. Thread-safe.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

from deviceplugin.api.podresources.v1 import api_pb2 as pr
from deviceplugin.api.podresources.v1 import api_pb2_grpc as pr_grpc
from deviceplugin.api.v1beta1 import api_pb2 as pb
from deviceplugin.api.v1beta1 import api_pb2_grpc as pb_grpc
from deviceplugin.simulator.pluginwatcher import PluginWatcherSim
from deviceplugin.simulator.podresources import PodResourcesServicer

log = logging.getLogger(__name__)

KUBELET_SOCKET = "kubelet.sock"
CHECKPOINT = "kubelet_internal_checkpoint"


class SimulatorError(Exception):
    """A simulated kubelet operation failed (no such resource, not enough devices...)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]
    response: pb.ContainerAllocateResponse


class _Endpoint:
    """One registered plugin: its channel, options and latest device list."""

    def __init__(self, resource: str, socket: Path, on_update: Callable[[], None]) -> None:
        self.resource = resource
        self.socket = socket
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.stub = pb_grpc.DevicePluginStub(self.channel)
        self.options = self.stub.GetDevicePluginOptions(pb.Empty(), timeout=10)
        self.devices: dict[str, pb.Device] = {}
        self.updates = 0
        self.received_at = 0.0
        """``time.monotonic()`` when the latest ListAndWatch response arrived."""
        self.connected = True
        self._on_update = on_update
        self._stream = self.stub.ListAndWatch(pb.Empty())
        self._thread = threading.Thread(target=self._consume, daemon=True,
                                        name=f"sim-law-{resource}")
        self._thread.start()

    def _consume(self) -> None:
        try:
            for response in self._stream:
                self.received_at = time.monotonic()
                self.devices = {d.ID: d for d in response.devices}
                self.updates += 1
                self._on_update()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                log.info("ListAndWatch ended resource=%s code=%s", self.resource, e.code())
        self.connected = False
        self._on_update()

    def close(self) -> None:
        self._stream.cancel()
        self.channel.close()
        self._thread.join(timeout=5)


class _Registration(pb_grpc.RegistrationServicer):
    def __init__(self, sim: KubeletSimulator) -> None:
        self._sim = sim

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unsupported version {request.version!r}")
        if "/" not in request.resource_name or request.resource_name.startswith("kubernetes.io/"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"not an extended resource name: {request.resource_name!r}")
        if "/" in request.endpoint:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"endpoint must be a file name, got {request.endpoint!r}")
        if self._sim.refuse_registrations > 0:
            self._sim.refuse_registrations -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "simulated: kubelet not ready")
        try:
            self._sim._add_endpoint(request.resource_name,
                                    self._sim.plugin_dir / request.endpoint)
        except grpc.RpcError as e:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"cannot reach plugin at {request.endpoint}: {e.code()}")
        return pb.Empty()


class KubeletSimulator:
    """``plugins_registry``: also discover plugins there (plugin-watcher mode).
    ``refuse_registrations``: answer that many Register calls with UNAVAILABLE."""

    def __init__(self, plugin_dir: Path, pod_resources_socket: Path | None = None, *,
                 plugins_registry: Path | None = None, refuse_registrations: int = 0) -> None:
        self.plugin_dir = plugin_dir
        self.refuse_registrations = refuse_registrations
        self.plugin_watcher = (None if plugins_registry is None else PluginWatcherSim(
            plugins_registry, self._add_endpoint, self._remove_endpoint))
        self.pod_resources_socket = (pod_resources_socket or
                                     plugin_dir.parent / "pod-resources" / KUBELET_SOCKET)
        self._cond = threading.Condition()
        self._endpoints: dict[str, _Endpoint] = {}
        self._allocations: list[Allocation] = []
        self.registrations: dict[str, int] = {}
        self._server: grpc.Server | None = None
        self._pr_server: grpc.Server | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self._cleanup_plugin_dir()
        self._serve_registration()
        self.pod_resources_socket.parent.mkdir(parents=True, exist_ok=True)
        self.pod_resources_socket.unlink(missing_ok=True)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pr_grpc.add_PodResourcesListerServicer_to_server(
            PodResourcesServicer(self._pod_resources, self._allocatable), server)
        server.add_insecure_port(f"unix://{self.pod_resources_socket}")
        server.start()
        self._pr_server = server
        if self.plugin_watcher is not None:
            self.plugin_watcher.start()

    def stop(self) -> None:
        if self.plugin_watcher is not None:
            self.plugin_watcher.stop()
        self._stop_registration()
        if self._pr_server is not None:
            self._pr_server.stop(grace=0).wait(5)
            self._pr_server = None
            self.pod_resources_socket.unlink(missing_ok=True)

    def restart(self) -> None:
        """What a kubelet restart looks like to plugins: sockets wiped, kubelet.sock re-created."""
        self._stop_registration()
        self._cleanup_plugin_dir()
        self._serve_registration()

    def __enter__(self) -> KubeletSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_registration(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_RegistrationServicer_to_server(_Registration(self), server)
        server.add_insecure_port(f"unix://{self.plugin_dir / KUBELET_SOCKET}")
        server.start()
        self._server = server

    def _stop_registration(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0).wait(5)
            self._server = None
        with self._cond:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for ep in endpoints:
            ep.close()
        (self.plugin_dir / KUBELET_SOCKET).unlink(missing_ok=True)

    def _cleanup_plugin_dir(self) -> None:
        for entry in self.plugin_dir.iterdir():
            if entry.name != CHECKPOINT and not entry.is_dir():
                entry.unlink(missing_ok=True)

    def _add_endpoint(self, resource: str, socket: Path) -> None:
        ep = _Endpoint(resource, socket, self._notify)
        with self._cond:
            old = self._endpoints.pop(resource, None)
            self._endpoints[resource] = ep
            self.registrations[resource] = self.registrations.get(resource, 0) + 1
            self._cond.notify_all()
        if old is not None:
            old.close()
        log.info("plugin registered resource=%s endpoint=%s", resource, socket)

    def _remove_endpoint(self, resource: str) -> None:
        with self._cond:
            ep = self._endpoints.pop(resource, None)
            self._cond.notify_all()
        if ep is not None:
            ep.close()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- state -----------------------------------------------------------------------
    def resources(self) -> list[str]:
        with self._cond:
            return sorted(r for r, ep in self._endpoints.items() if ep.connected)

    def devices(self, resource: str) -> dict[str, pb.Device]:
        with self._cond:
            ep = self._endpoints.get(resource)
            return dict(ep.devices) if ep is not None and ep.connected else {}

    def received_at(self, resource: str) -> float:
        """When the resource's latest ListAndWatch response arrived (0.0: none)."""
        with self._cond:
            ep = self._endpoints.get(resource)
            return ep.received_at if ep is not None else 0.0

    def capacity(self, resource: str) -> int:
        return len(self.devices(resource))

    def allocatable(self, resource: str) -> list[str]:
        return sorted(i for i, d in self.devices(resource).items() if d.health == "Healthy")

    def wait_until(self, predicate: Callable[[KubeletSimulator], bool], timeout: float) -> bool:
        """Wait (on the update Condition, no polling) until ``predicate(self)`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def allocations(self) -> list[Allocation]:
        with self._cond:
            return list(self._allocations)

    # -- allocation --------------------------------------------------------------
    def allocate(self, pod_namespace: str, pod_name: str, container: str, resource: str,
                 count: int) -> pb.AllocateResponse:
        with self._cond:
            ep = self._endpoints.get(resource)
            if ep is None or not ep.connected:
                raise SimulatorError(f"resource {resource} is not registered")
            used = {i for a in self._allocations if a.resource == resource
                    for i in a.device_ids}
            available = sorted(i for i, d in ep.devices.items()
                               if d.health == "Healthy" and i not in used)
            if len(available) < count:
                raise SimulatorError(f"{resource}: {count} requested, "
                                     f"{len(available)} available")
            chosen = available[:count]
            if ep.options.get_preferred_allocation_available:
                preq = pb.PreferredAllocationRequest(container_requests=[
                    pb.ContainerPreferredAllocationRequest(
                        available_deviceIDs=available, must_include_deviceIDs=[],
                        allocation_size=count)])
                presp = ep.stub.GetPreferredAllocation(preq, timeout=10)
                if presp.container_responses:
                    preferred = list(presp.container_responses[0].deviceIDs)
                    if len(preferred) == count and set(preferred) <= set(available):
                        chosen = preferred
            request = pb.AllocateRequest(container_requests=[
                pb.ContainerAllocateRequest(devices_ids=chosen)])
            response = ep.stub.Allocate(request, timeout=10)
            if not response.container_responses:
                raise SimulatorError(f"{resource}: Allocate returned no container response")
            self._allocations.append(Allocation(
                namespace=pod_namespace, pod=pod_name, container=container, resource=resource,
                device_ids=tuple(chosen), response=response.container_responses[0]))
            return response

    def release(self, pod_namespace: str, pod_name: str) -> None:
        with self._cond:
            self._allocations = [a for a in self._allocations
                                 if (a.namespace, a.pod) != (pod_namespace, pod_name)]

    # -- pod-resources views -----------------------------------------------------------
    def _topology(self, resource: str, ids: tuple[str, ...] | list[str]) -> pr.TopologyInfo:
        devices = self.devices(resource)
        nodes = sorted({n.ID for i in ids if i in devices for n in devices[i].topology.nodes})
        return pr.TopologyInfo(nodes=[pr.NUMANode(ID=n) for n in nodes])

    def _pod_resources(self) -> list[pr.PodResources]:
        pods: dict[tuple[str, str], dict[str, list[pr.ContainerDevices]]] = {}
        for a in self.allocations():
            containers = pods.setdefault((a.namespace, a.pod), {})
            containers.setdefault(a.container, []).append(pr.ContainerDevices(
                resource_name=a.resource, device_ids=list(a.device_ids),
                topology=self._topology(a.resource, a.device_ids)))
        return [pr.PodResources(name=pod, namespace=ns, containers=[
                    pr.ContainerResources(name=c, devices=devs) for c, devs in conts.items()])
                for (ns, pod), conts in pods.items()]

    def _allocatable(self) -> list[pr.ContainerDevices]:
        return [pr.ContainerDevices(resource_name=r, device_ids=[i],
                                    topology=self._topology(r, [i]))
                for r in self.resources() for i in self.allocatable(r)]
