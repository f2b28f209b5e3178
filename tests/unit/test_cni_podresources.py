"""Pod-resources v1 lookup against a real gRPC server on a unix socket (raw protobuf bytes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from cni.netconf import NetConf
from cni.podresources import (
    PodDevices,
    PodResourcesLookup,
    _string_field,
    _varint,
    decode_pod,
    encode_pod,
    fields,
    query,
)
from cni.protocol import CmdArgs
from cni.record import AttachmentMode, AttachmentRecord, VfPart
from cni.state import StateStore

POD = PodDevices(
    name="web",
    namespace="default",
    devices=(
        ("intel.com/sriov", "0000:3b:02.3"),
        ("intel.com/sriov", "0000:3b:02.1"),
        ("nvidia.com/gpu", "GPU-1"),
    ),
)
OTHER = PodDevices(name="db", namespace="default", devices=(("intel.com/sriov", "0000:3b:02.7"),))


def _wrap(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A pod-resources server serving Get and List."""
    calls: list[str] = []
    socket = tmp_path / "kubelet.sock"

    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.append("Get")
        f = {n: v for n, _, v in fields(request)}
        pods = [
            p
            for p in (POD, OTHER)
            if (p.name.encode(), p.namespace.encode()) == (f.get(1), f.get(2))
        ]
        if not pods:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such pod")
        return _wrap(1, encode_pod(pods[0]))

    def list_(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.append("List")
        return _wrap(1, encode_pod(OTHER)) + _wrap(1, encode_pod(POD))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "List": grpc.unary_unary_rpc_method_handler(list_),
        "Get": grpc.unary_unary_rpc_method_handler(get),
    }
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("v1.PodResourcesLister", handlers)]
    )
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    try:
        yield socket, calls
    finally:
        server.stop(None)


def test_wire_format_round_trip() -> None:
    assert decode_pod(encode_pod(POD)) == POD
    assert list(fields(_string_field(2, "ab"))) == [(2, 2, b"ab")]


def test_query_uses_get(kubelet: tuple[Path, list[str]]) -> None:
    socket, calls = kubelet
    assert query(socket, "web", "default") == POD
    assert calls == ["Get"]


def _lookup(
    tmp_path: Path,
    socket: Path,
    state: StateStore,
    resource: str | None = "intel.com/sriov",
    cid: str = "c1",
) -> str | None:
    for vf in ("0000:3b:02.1", "0000:3b:02.3", "0000:3b:02.7"):
        (tmp_path / "sys/bus/pci/devices" / vf / "physfn").mkdir(parents=True, exist_ok=True)
    args = CmdArgs.from_env(
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "net1",
            "CNI_PATH": "/b",
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default",
        }
    )
    body = {"cniVersion": "1.0.0", "name": "n", "podResourcesSocket": str(socket)}
    if resource:
        body["resourceName"] = resource
    return PodResourcesLookup(tmp_path)(args, NetConf.parse(json.dumps(body).encode(), args), state)


def _owned(cid: str, ifname: str, pci: str) -> AttachmentRecord:
    return AttachmentRecord(mode=AttachmentMode.VF, container_id=cid, ifname=ifname,
                            network="n", netns="/run/netns/o", device_id=pci,
                            vf=VfPart(pf="st-pf0", vf_index=1))


def test_lookup_picks_sorted_free_local_vf(tmp_path: Path, kubelet: tuple[Path, list[str]]) -> None:
    socket, _ = kubelet
    state = StateStore(tmp_path / "state")
    assert _lookup(tmp_path, socket, state) == "0000:3b:02.1"
    state.set_owner("0000:3b:02.1", _owned("other", "net1", "0000:3b:02.1"))
    assert _lookup(tmp_path, socket, state) == "0000:3b:02.3"
    state.set_owner("0000:3b:02.3", _owned("other", "net2", "0000:3b:02.3"))
    assert _lookup(tmp_path, socket, state) is None
    assert _lookup(tmp_path, socket, state, resource="nvidia.com/gpu") is None  # not a PCI VF


def test_lookup_without_socket_returns_none(tmp_path: Path) -> None:
    assert _lookup(tmp_path, tmp_path / "absent.sock", StateStore(tmp_path / "s")) is None


def test_falls_back_to_list_when_get_unimplemented(tmp_path: Path) -> None:
    calls: list[str] = []
    socket = tmp_path / "k.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))

    def list_(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.append("List")
        return _wrap(1, encode_pod(OTHER)) + _wrap(1, encode_pod(POD))

    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "v1.PodResourcesLister", {"List": grpc.unary_unary_rpc_method_handler(list_)}
            )
        ]
    )
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    try:
        assert query(socket, "web", "default") == POD
        assert calls == ["List"]
    finally:
        server.stop(None)
