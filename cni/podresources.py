"""Find the VF kubelet allocated to a pod via the kubelet pod-resources v1 API.

Used when the netconf carries no ``deviceID`` (no Multus injection). ``grpc`` is imported
lazily inside :func:`query` only, so ``import cni.main`` stays light. The few protobuf
messages needed (``GetPodResourcesRequest``, ``PodResources``, ``ContainerResources``,
``ContainerDevices`` of ``k8s.io/kubelet/pkg/apis/podresources/v1``) are encoded and decoded
by hand from their field numbers: no generated stubs, no ``deviceplugin`` import.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from cni.errors import CniCode, CniError
from cni.netconf import NetConf
from cni.protocol import CmdArgs
from cni.record import VfOwner
from cni.state import StateStore
from sriov import validate
from sriov.errors import InvalidInputError
from sriov.types import PciAddress

log = logging.getLogger(__name__)
DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
SERVICE = "/v1.PodResourcesLister/"
MAX_MESSAGE = 16 * 1024 * 1024  # as Multus
DEFAULT_TIMEOUT = 10.0


# ------------------------------------------------------------------ protobuf wire format


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string_field(number: int, value: str) -> bytes:
    data = value.encode()
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one message; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, wire, int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _sub(buf: bytes, number: int) -> Iterator[bytes]:
    for n, wire, value in fields(buf):
        if n == number and wire == 2 and isinstance(value, bytes):
            yield value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PodDevices:
    name: str
    namespace: str
    devices: tuple[tuple[str, str], ...]
    """(resource name, device id) over all containers."""


def encode_get_request(pod_name: str, namespace: str) -> bytes:
    return _string_field(1, pod_name) + _string_field(2, namespace)


def encode_pod(pod: PodDevices) -> bytes:
    """Encode a ``PodResources`` (one container holding all devices); used by tests/simulators."""
    devices = b""
    for resource, device in pod.devices:
        inner = _string_field(1, resource) + _string_field(2, device)
        devices += _varint(2 << 3 | 2) + _varint(len(inner)) + inner
    container = _string_field(1, "c") + devices
    return (
        _string_field(1, pod.name)
        + _string_field(2, pod.namespace)
        + _varint(3 << 3 | 2)
        + _varint(len(container))
        + container
    )


def decode_pod(buf: bytes) -> PodDevices:
    name = namespace = ""
    devices: list[tuple[str, str]] = []
    for n, wire, value in fields(buf):
        if wire != 2 or not isinstance(value, bytes):
            continue
        if n == 1:
            name = value.decode()
        elif n == 2:
            namespace = value.decode()
        elif n == 3:
            for cdev in _sub(value, 2):
                resource = next((v.decode() for v in _sub(cdev, 1)), "")
                devices += [(resource, d.decode()) for d in _sub(cdev, 2)]
    return PodDevices(name=name, namespace=namespace, devices=tuple(devices))


# ------------------------------------------------------------------ gRPC client


def query(
    socket: Path, pod_name: str, namespace: str, timeout: float = DEFAULT_TIMEOUT
) -> PodDevices | None:
    """``Get`` the pod's resources; fall back to ``List`` on kubelets without ``Get``."""
    import grpc  # lazy: keeps cni.main free of grpc

    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(f"unix://{socket}", options=options) as channel:
        try:
            get = channel.unary_unary(SERVICE + "Get")
            reply = get(encode_get_request(pod_name, namespace), timeout=timeout)
            pods = [decode_pod(p) for p in _sub(reply, 1)]
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNIMPLEMENTED,):
                raise CniError(
                    CniCode.TRY_AGAIN_LATER,
                    "pod-resources Get failed",
                    f"{e.code()}: {e.details()}",
                ) from None
            log.info("pod-resources Get unimplemented; using List")
            try:
                reply = channel.unary_unary(SERVICE + "List")(b"", timeout=timeout)
            except grpc.RpcError as e2:
                raise CniError(
                    CniCode.TRY_AGAIN_LATER,
                    "pod-resources List failed",
                    f"{e2.code()}: {e2.details()}",
                ) from None
            pods = [decode_pod(p) for p in _sub(reply, 1)]
    return next((p for p in pods if (p.name, p.namespace) == (pod_name, namespace)), None)


def list_pods(socket: Path, timeout: float = DEFAULT_TIMEOUT) -> list[PodDevices]:
    """``List``: every pod's devices on this node."""
    import grpc  # lazy: keeps cni.main free of grpc

    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(f"unix://{socket}", options=options) as channel:
        try:
            reply = channel.unary_unary(SERVICE + "List")(b"", timeout=timeout)
        except grpc.RpcError as e:
            raise CniError(
                CniCode.TRY_AGAIN_LATER, "pod-resources List failed", f"{e.code()}: {e.details()}"
            ) from None
    return [decode_pod(p) for p in _sub(reply, 1)]


def claimed_by_other_pod(
    pods: list[PodDevices], device: str, pod_name: str, namespace: str
) -> PodDevices | None:
    """The pod kubelet allocated ``device`` to, when that is not (also) this pod."""
    holders = [p for p in pods if any(d == device for _, d in p.devices)]
    if any((p.name, p.namespace) == (pod_name, namespace) for p in holders):
        return None
    return holders[0] if holders else None


def pick_device(
    pod: PodDevices,
    resource_name: str | None,
    *,
    is_local_vf: Callable[[PciAddress], bool],
    owner_of: Callable[[str], VfOwner | None],
    container_id: str,
    ifname: str,
) -> PciAddress | None:
    """First (sorted, as Multus) device of the resource that is a VF here and not owned by
    another attachment."""
    ids = sorted({d for r, d in pod.devices if resource_name in (None, "", r)})
    for raw in ids:
        try:
            pci = validate.pci_address(raw)
        except InvalidInputError:
            continue
        if not is_local_vf(pci):
            continue
        owner = owner_of(pci)
        if owner and owner.key != (container_id, ifname):
            continue
        return pci
    return None


class PodResourcesLookup:
    """The plugin's ``device_lookup``: kubelet pod-resources -> a free local VF, or None."""

    def __init__(self, sysfs_root: Path = Path("/"), default_socket: Path = DEFAULT_SOCKET) -> None:
        self.sysfs_root = sysfs_root
        self.default_socket = default_socket

    def __call__(self, args: CmdArgs, conf: NetConf, state: StateStore) -> PciAddress | None:
        socket = (
            Path(conf.pod_resources_socket) if conf.pod_resources_socket else self.default_socket
        )
        pod_name, namespace = args.arg("K8S_POD_NAME"), args.arg("K8S_POD_NAMESPACE")
        if not pod_name or not namespace or not socket.exists():
            log.debug("no pod-resources lookup (pod=%s socket=%s)", pod_name, socket)
            return None
        pod = query(socket, pod_name, namespace)
        if pod is None:
            return None
        devices = self.sysfs_root / "sys/bus/pci/devices"
        return pick_device(
            pod,
            conf.resource_name,
            is_local_vf=lambda pci: (devices / pci / "physfn").exists(),
            owner_of=state.owner,
            container_id=args.container_id,
            ifname=args.ifname,
        )


    def verify_claim(self, args: CmdArgs, conf: NetConf, device: PciAddress) -> None:
        """Refuse a configured deviceID that kubelet allocated to another pod (when reachable)."""
        socket = (
            Path(conf.pod_resources_socket) if conf.pod_resources_socket else self.default_socket
        )
        pod_name, namespace = args.arg("K8S_POD_NAME"), args.arg("K8S_POD_NAMESPACE")
        if not pod_name or not namespace or not socket.exists():
            return
        other = claimed_by_other_pod(list_pods(socket), device, pod_name, namespace)
        if other is not None:
            raise CniError(
                CniCode.VF_BUSY,
                f"deviceID {device} is allocated by kubelet to pod {other.namespace}/{other.name}",
                f"pod {namespace}/{pod_name} may only use devices allocated to it",
            )

def device_ids_by_resource(pod: PodDevices) -> Mapping[str, list[str]]:
    out: dict[str, list[str]] = {}
    for resource, device in pod.devices:
        out.setdefault(resource, []).append(device)
    return {k: sorted(v) for k, v in out.items()}
