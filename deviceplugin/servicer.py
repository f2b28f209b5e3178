"""gRPC adapter: ``v1beta1.DevicePlugin`` for one pool, backed by the DeviceRegistry.

The only place that turns device-plugin errors into gRPC status codes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from deviceplugin.allocation import allocate_container
from deviceplugin.api.v1beta1 import api_pb2 as pb
from deviceplugin.api.v1beta1 import api_pb2_grpc as pb_grpc
from deviceplugin.devicelist import DeviceListEncoder
from deviceplugin.errors import DevicePluginError
from deviceplugin.files import write_atomic
from deviceplugin.metrics import Metrics
from deviceplugin.pool import Policy, preferred_allocation
from deviceplugin.registry import DeviceRegistry, PoolState
from sriov.devclass import DEFAULT_DEV_ROOT

log = logging.getLogger(__name__)

DEVINFO_MODE = 0o444
"""Device-info files are read-only, as upstream writes them."""
STREAM_RECHECK_S = 30.0
"""Streams wake on every registry change, stop, and client cancel; this is only a backstop."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServiceOptions:
    policy: Policy = Policy.SPREAD
    use_cdi: bool = False
    devinfo_dir: Path | None = None
    """Where NPWG device-info files go; None = do not write them."""
    dev_root: Path = DEFAULT_DEV_ROOT
    """Where device nodes are checked (``<sysfs-root>/dev``); missing ones are left out."""


class DevicePluginServicer(pb_grpc.DevicePluginServicer):
    def __init__(self, resource: str, registry: DeviceRegistry, options: ServiceOptions,
                 metrics: Metrics) -> None:
        self.resource = resource
        self._registry = registry
        self._options = options
        self._metrics = metrics
        self._stopped = threading.Event()
        self.devinfo_files: set[Path] = set()
        """Device-info files written, removed at stop."""
        self._encoder = DeviceListEncoder()

    def stop(self) -> None:
        """End every ListAndWatch stream of this servicer."""
        self._stopped.set()
        self._registry.wake_all()

    def _pool(self) -> PoolState | None:
        return self._registry.snapshot.pools.get(self.resource)

    # -- RPCs -----------------------------------------------------------------------
    def GetDevicePluginOptions(self, request: pb.Empty, context: grpc.ServicerContext
                               ) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(pre_start_required=False,
                                      get_preferred_allocation_available=True)

    def ListAndWatch(self, request: pb.Empty, context: grpc.ServicerContext
                     ) -> Iterator[bytes]:
        """Yields wire bytes of ``ListAndWatchResponse`` (see deviceplugin.devicelist)."""
        context.add_callback(self._registry.wake_all)
        last_sent: PoolState | None = None
        snapshot = self._registry.snapshot
        log.info("ListAndWatch opened resource=%s", self.resource)
        while context.is_active() and not self._stopped.is_set() and not self._registry.stopped:
            pool = snapshot.pools.get(self.resource)
            if pool is None:
                log.info("pool removed, ending ListAndWatch resource=%s", self.resource)
                return
            if pool is not last_sent and (last_sent is None or pool.devices != last_sent.devices):
                last_sent = pool
                encoded = self._encoder.encode(pool)
                log.info("ListAndWatch send resource=%s devices=%s bytes=%s",
                         self.resource, len(pool.devices), len(encoded))
                yield encoded
            snapshot = self._registry.wait_for_change(snapshot.generation, STREAM_RECHECK_S)
        log.info("ListAndWatch closed resource=%s", self.resource)

    def GetPreferredAllocation(self, request: pb.PreferredAllocationRequest,
                               context: grpc.ServicerContext) -> pb.PreferredAllocationResponse:
        pool = self._pool()
        if pool is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"resource {self.resource} is gone")
            raise AssertionError("unreachable: abort() raises")
        devices = pool.by_id()
        responses = []
        for creq in request.container_requests:
            try:
                ids = preferred_allocation(devices, list(creq.available_deviceIDs),
                                           list(creq.must_include_deviceIDs),
                                           creq.allocation_size, self._options.policy)
            except DevicePluginError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=ids))
        log.info("GetPreferredAllocation resource=%s containers=%s", self.resource,
                 len(responses))
        return pb.PreferredAllocationResponse(container_responses=responses)

    def Allocate(self, request: pb.AllocateRequest, context: grpc.ServicerContext
                 ) -> pb.AllocateResponse:
        started = time.perf_counter()
        pool = self._pool()
        if pool is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"resource {self.resource} is gone")
            raise AssertionError("unreachable: abort() raises")
        devices = pool.by_id()
        allocations = []
        all_ids: list[str] = []
        for creq in request.container_requests:
            ids = list(creq.devices_ids)
            unknown = [i for i in ids if i not in devices]
            if unknown:
                log.warning("Allocate rejected resource=%s unknown_ids=%s", self.resource,
                            ",".join(unknown))
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"devices_ids: {', '.join(unknown)} not advertised by "
                              f"resource {self.resource}")
            unhealthy = [i for i in ids if not devices[i].healthy]
            if unhealthy:
                log.warning("Allocate of unhealthy devices resource=%s ids=%s",
                            self.resource, ",".join(unhealthy))
            alloc = allocate_container(pool.spec, [devices[i] for i in ids],
                                       use_cdi=self._options.use_cdi,
                                       dev_root=self._options.dev_root)
            if alloc.missing_nodes:
                log.warning("device nodes missing on the host, not handed to the runtime "
                            "resource=%s paths=%s", self.resource, ",".join(alloc.missing_nodes))
            allocations.append(alloc)
            all_ids.extend(ids)
        if self._options.devinfo_dir is not None:
            for alloc in allocations:
                for name, content in alloc.device_info.items():
                    self._write_devinfo(self._options.devinfo_dir / name, content)
        response = pb.AllocateResponse(container_responses=[
            pb.ContainerAllocateResponse(
                envs=a.envs,
                devices=[pb.DeviceSpec(container_path=n.container_path, host_path=n.host_path,
                                       permissions=n.permissions) for n in a.devices],
                cdi_devices=[pb.CDIDevice(name=n) for n in a.cdi_devices],
            )
            for a in allocations
        ])
        elapsed = time.perf_counter() - started
        self._metrics.observe_allocation(self.resource, all_ids, elapsed)
        log.info("Allocate resource=%s ids=%s", self.resource, ",".join(all_ids))
        return response

    def PreStartContainer(self, request: pb.PreStartContainerRequest,
                          context: grpc.ServicerContext) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()

    def _write_devinfo(self, path: Path, content: str) -> None:
        """(Re)write a device-info file on every Allocate, read-only as upstream's (0444):
        the file a pod's CNI reads is the one of its own allocation, whatever happened to
        it since."""
        write_atomic(path, content, mode=DEVINFO_MODE)
        self.devinfo_files.add(path)

    def remove_devinfo_files(self) -> None:
        for path in self.devinfo_files:
            path.unlink(missing_ok=True)
        self.devinfo_files.clear()
