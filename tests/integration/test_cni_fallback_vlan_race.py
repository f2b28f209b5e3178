"""Two concurrent fallback DELs of the last two users of one ``<master>.<vid>`` (issue 11 #10).

This kernel has no 8021q, so the shared sub-interface is stood in for by a real veth with the
sub-interface's name, registered exactly as ADD registers one (marker file, ``vlanParent`` in
the attachment records). The two attachments are real macvlans made by real ADDs in real netns.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.fallback_vlan import RECORD_KEY, VLAN_DIR
from cni.state import StateStore
from tests.conftest import unique
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    Cni,
    Lan,
    lan,
    link_json,
    ns_path,
    sh,
)

pytestmark = pytest.mark.root


@pytest.fixture
def two_pods() -> Iterator[tuple[str, str]]:
    names = (unique("st-ns-"), unique("st-ns-"))
    for name in names:
        sh("ip", "netns", "add", name)
    try:
        yield names
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)


def host_link_exists(name: str) -> bool:
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


def test_the_last_of_two_concurrent_dels_deletes_the_vlan_parent(
    tmp_path: Path, lan: Lan, two_pods: tuple[str, str], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    cni = Cni(tmp_path, lan.master)
    conf = cni.conf(ipam=False)
    for i, pod in enumerate(two_pods):
        cni.ok("ADD", conf, ns_path(pod), cid=f"st-v{i}")
    parent = f"{lan.master}.42"
    peer = unique("st-vp-")
    sh("ip", "link", "add", parent, "type", "veth", "peer", "name", peer)
    try:
        # register the stand-in as a sub-interface that ADD created and both attachments use
        (cni.state_dir / VLAN_DIR).mkdir(mode=0o700, exist_ok=True)
        (cni.state_dir / VLAN_DIR / parent).write_bytes(b"created by the sriov CNI fallback\n")
        for i in range(2):
            path = cni.state_dir / f"st-v{i}-net1"
            record = json.loads(path.read_text())  # a version-2 record: the fallback part
            record["fallback"] = {**record["fallback"], RECORD_KEY: parent}
            path.write_text(json.dumps(record))

        # force the interleaving: DEL of st-v0 has done its mode work and waits to drop its
        # record while DEL of st-v1 runs completely
        at_record_delete, go_on = threading.Event(), threading.Event()
        original = StateStore.delete

        def slow_delete(self: StateStore, container_id: str, ifname: str) -> None:
            if container_id == "st-v0":
                at_record_delete.set()
                assert go_on.wait(60)
            original(self, container_id, ifname)

        monkeypatch.setattr(StateStore, "delete", slow_delete)
        first: list[object] = []
        thread = threading.Thread(
            target=lambda: first.append(cni.call("DEL", conf, ns_path(two_pods[0]), cid="st-v0")))
        thread.start()
        try:
            assert at_record_delete.wait(60), "the first DEL never reached its record removal"
            second = cni.call("DEL", conf, ns_path(two_pods[1]), cid="st-v1")
        finally:
            go_on.set()
            thread.join(60)
        assert second.rc == 0, second.out
        assert first and first[0].rc == 0, first  # type: ignore[attr-defined]
        assert all(link_json(pod, "net1") is None for pod in two_pods)
        assert cni.records() == []
        assert not host_link_exists(parent), "both DELs kept the now unused VLAN parent"
        assert not (cni.state_dir / VLAN_DIR / parent).exists()
    finally:
        sh("ip", "link", "del", parent, check=False)
