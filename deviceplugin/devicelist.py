"""ListAndWatch wire bytes per pool, re-encoding only the devices that changed.

A ``ListAndWatchResponse`` is one repeated field, and protobuf concatenation
appends repeated fields, so the response bytes are the concatenation of
one-device responses. Each device's bytes are cached under what goes on the
wire (ID, health, NUMA node); a carrier flip on one PF re-encodes only its VFs.
The gRPC handler (:func:`add_device_plugin_servicer`) sends those bytes as is.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from deviceplugin.api.v1beta1 import api_pb2 as pb
from deviceplugin.pool import PoolDevice
from deviceplugin.registry import PoolState

SERVICE = "v1beta1.DevicePlugin"

_WireKey = tuple[str, str, int | None]


def _wire_key(device: PoolDevice) -> _WireKey:
    return (device.id, str(device.health), device.numa_node)


def encode_device(device: PoolDevice) -> bytes:
    """One device as a complete one-element ``ListAndWatchResponse``."""
    topology = None
    if device.numa_node is not None:
        topology = pb.TopologyInfo(nodes=[pb.NUMANode(ID=device.numa_node)])
    message = pb.Device(ID=device.id, health=str(device.health), topology=topology)
    return pb.ListAndWatchResponse(devices=[message]).SerializeToString()


class DeviceListEncoder:
    """Cached, incrementally re-encoded ``ListAndWatchResponse`` bytes of one pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: PoolState | None = None
        self._bytes = b""
        self._parts: dict[_WireKey, bytes] = {}

    def encode(self, pool: PoolState) -> bytes:
        with self._lock:
            if pool is self._state:
                return self._bytes
            parts: dict[_WireKey, bytes] = {}
            old = self._parts
            for device in pool.devices:
                key = _wire_key(device)
                encoded = old.get(key)
                parts[key] = encoded if encoded is not None else encode_device(device)
            self._parts = parts
            self._bytes = b"".join(parts.values())
            self._state = pool
            return self._bytes


def _serialize(response: bytes | pb.ListAndWatchResponse) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_device_plugin_servicer(servicer: Any, server: grpc.Server) -> None:
    """Like the generated ``add_DevicePluginServicer_to_server``, but ListAndWatch may
    yield pre-encoded bytes (from :class:`DeviceListEncoder`)."""
    s = servicer
    handlers = {
        "GetDevicePluginOptions": grpc.unary_unary_rpc_method_handler(
            s.GetDevicePluginOptions, request_deserializer=pb.Empty.FromString,
            response_serializer=pb.DevicePluginOptions.SerializeToString),
        "ListAndWatch": grpc.unary_stream_rpc_method_handler(
            s.ListAndWatch, request_deserializer=pb.Empty.FromString,
            response_serializer=_serialize),
        "GetPreferredAllocation": grpc.unary_unary_rpc_method_handler(
            s.GetPreferredAllocation,
            request_deserializer=pb.PreferredAllocationRequest.FromString,
            response_serializer=pb.PreferredAllocationResponse.SerializeToString),
        "Allocate": grpc.unary_unary_rpc_method_handler(
            s.Allocate, request_deserializer=pb.AllocateRequest.FromString,
            response_serializer=pb.AllocateResponse.SerializeToString),
        "PreStartContainer": grpc.unary_unary_rpc_method_handler(
            s.PreStartContainer, request_deserializer=pb.PreStartContainerRequest.FromString,
            response_serializer=pb.PreStartContainerResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
