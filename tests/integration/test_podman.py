"""podman 4.x (CNI backend, runc) as a real runtime driving our ``sriov`` CNI plugin.

Each test starts a busybox container on a network configuration list, pings from inside it,
removes it with ``podman rm -f`` and checks that nothing is left: no CNI state, no IPAM lease,
the VF back in the host with its original name, MAC and MTU. No agent runs here, so the shim
runs the plugin in-process (the agent path is covered by the demo tests).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import is_root, unique

pytestmark = [pytest.mark.root, pytest.mark.podman]


@pytest.fixture(scope="module")
def harness() -> Iterator[tuple[object, object]]:
    """(Podman, Layout) sharing one short temp work dir; skips with the probe's reason."""
    if not is_root():
        pytest.skip("needs root for podman with the CNI backend")
    from demo.podman import Podman, PodmanSetup
    from demo.stack import Layout, install_shim

    base = Path(tempfile.mkdtemp(prefix="st-pm-"))  # short: unix socket paths live below it
    layout = Layout(workdir=base)
    install_shim(layout)
    podman = Podman(PodmanSetup(workdir=layout.podman, plugin_dirs=layout.plugin_dirs,
                                env=layout.cni_env()))
    try:
        reason = podman.probe()
        if reason is not None:
            pytest.skip(reason)
        yield podman, layout
    finally:
        podman.close()
        shutil.rmtree(base, ignore_errors=True)


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


def _assert_no_state(layout: object) -> None:
    from demo.snapshot import lease_files, state_records

    assert state_records(layout.cni_state) == ()  # type: ignore[attr-defined]
    assert lease_files(layout.ipam) == ()  # type: ignore[attr-defined]


@pytest.fixture
def container(harness: tuple[object, object]) -> Iterator[str]:
    podman, _ = harness
    name = unique("st-c-")
    yield name
    podman.remove(name) if name in podman._containers else None  # type: ignore[attr-defined]


def test_macvlan_fallback_container_reaches_a_peer(harness, container: str, netns: str) -> None:
    from demo import conflists

    podman, layout = harness
    master, peer = unique("st-m"), unique("st-q")
    _ip("link", "add", master, "type", "veth", "peer", "name", peer)
    try:
        _ip("link", "set", peer, "netns", netns)
        _ip("-n", netns, "addr", "add", "10.77.0.1/24", "dev", peer)
        _ip("-n", netns, "link", "set", peer, "up")
        _ip("link", "set", master, "up")
        net = conflists.sriov_fallback(unique("st-net-"), master, conflists.host_local(
            "10.77.0.0/24", layout.ipam, rangeStart="10.77.0.10"))
        podman.run(container, podman.add_network(net))

        ping = podman.exec(container, "ping", "-c", "1", "-W", "2", "10.77.0.1")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        ns = Path(podman.netns_path(container)).name  # busybox ip has no -d: ask from the host
        kind = subprocess.run(["ip", "-n", ns, "-d", "-o", "link", "show", "eth0"],
                              capture_output=True, text=True, check=True).stdout
        assert "macvlan" in kind

        podman.remove(container)
        _assert_no_state(layout)
        assert subprocess.run(["ip", "link", "show", master], capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", master], check=False, capture_output=True)


@pytest.fixture
def emulated_vfs(harness: tuple[object, object]) -> Iterator[list[tuple[str, str, str]]]:
    """An emulated 1 PF x 2 VF host under the layout's emu root: [(pci, netdev, mac)]."""
    from sriov.emulate import host
    from sriov.emulate.spec import EmulationSpec
    from sriov.netlink import Netlink
    from sriov.sysfs import SysfsReader

    _, layout = harness
    tag = unique("st-")
    spec = EmulationSpec(pfs=1, vfs=2, pf_prefix=f"{tag}p", wire_prefix=f"{tag}w", bridge=f"{tag}b")
    with Netlink() as nl:
        host.up(layout.emu, spec, nl)  # type: ignore[attr-defined]
        try:
            vfs = SysfsReader(layout.emu).inventory().vfs  # type: ignore[attr-defined]
            yield [(vf.address, str(vf.netdev), str(nl.link(str(vf.netdev)).mac)) for vf in vfs]
        finally:
            host.down(layout.emu, nl)  # type: ignore[attr-defined]


@pytest.mark.parametrize("tuning", [False, True], ids=["vf", "vf+tuning"])
def test_vf_mode_container_with_multus_device_id(harness, container: str, netns: str,
                                                 emulated_vfs: list[tuple[str, str, str]],
                                                 tuning: bool) -> None:
    from demo import conflists
    from sriov.host import open_host
    from sriov.netlink import Netlink

    podman, layout = harness
    (vf_pci, vf_name, vf_mac), (_, peer_name, _) = emulated_vfs
    _ip("link", "set", peer_name, "netns", netns)  # the other VF plays a peer pod
    _ip("-n", netns, "addr", "add", "10.78.0.1/24", "dev", peer_name)
    _ip("-n", netns, "link", "set", peer_name, "up")
    net = conflists.sriov_vf(unique("st-net-"), vf_pci, conflists.host_local(
        "10.78.0.0/24", layout.ipam, rangeStart="10.78.0.10"))
    if tuning:
        net = conflists.with_tuning(net, mtu=1400)
    podman.run(container, podman.add_network(net))

    link = podman.exec(container, "ip", "-o", "link", "show", "eth0").stdout
    assert vf_mac in link  # the VF itself, not a veth of podman's
    assert (" mtu 1400 " in link) is tuning
    ping = podman.exec(container, "ping", "-c", "1", "-W", "2", "10.78.0.1")
    assert ping.returncode == 0, ping.stdout + ping.stderr

    podman.remove(container)

    with Netlink() as nl:
        emu = open_host(layout.emu, nl)
        emu.refresh()
        assert emu.sysfs.vf(vf_pci).netdev == vf_name
        back = nl.link(vf_name)
        assert back is not None and back.mac == vf_mac and back.mtu == 1500
    _assert_no_state(layout)
