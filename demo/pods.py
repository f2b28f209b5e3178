"""Pod-level demo steps: pick the runtime, show a pod's interface, kill a netns and recover."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

from demo import snapshot
from demo.cni_exec import Attachment, CniExecError, CniRunner
from demo.netns_runtime import NetnsRuntime
from demo.podman import Podman, PodmanSetup
from demo.processes import wait_until
from demo.report import StepFailed
from demo.stack import Layout
from sriov.host import open_host
from sriov.netlink import Netlink

log = logging.getLogger(__name__)
IFNAME = "eth0"
RECOVER_TIMEOUT = 10.0
_MAC_RE = re.compile(r"link/ether ([0-9a-f:]{17})")
_MTU_RE = re.compile(r" mtu (\d+) ")
_IPV4_RE = re.compile(r" inet (\d+\.\d+\.\d+\.\d+)/(\d+)")


class Runtime(Protocol):
    name: str
    passes_pod_namespace: bool

    def add_network(self, conflist: Mapping[str, Any]) -> str: ...
    def run(self, name: str, network: str) -> str: ...
    def exec(self, name: str, *argv: str, check: bool = False) -> Any: ...
    def netns_path(self, name: str) -> str: ...
    def kill_netns(self, name: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def close(self) -> None: ...


def make_runtime(choice: str, layout: Layout) -> tuple[Runtime, str]:
    """(runtime, why it was chosen). ``auto``: podman when a probe container runs, else netns."""
    if choice == "netns":
        return NetnsRuntime(layout.plugin_dirs, {**os.environ, **layout.cni_env()}), ""
    podman = Podman(PodmanSetup(workdir=layout.podman, plugin_dirs=layout.plugin_dirs,
                                env=layout.cni_env()))
    reason = podman.probe()
    if reason is None:
        return podman, "CNI backend, runc, state under the work dir"
    podman.close()
    if choice == "podman":
        raise StepFailed(reason)
    return (NetnsRuntime(layout.plugin_dirs, {**os.environ, **layout.cni_env()}),
            f"podman not usable here: {reason}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PodView:
    pod: str
    vf: str
    ifname: str
    mac: str
    mtu: int
    ip: str
    prefix: int
    vlan: int

    def line(self) -> str:
        return (f"{self.pod}: {self.ifname}  VF {self.vf}  mac {self.mac}  mtu {self.mtu}  "
                f"vlan {self.vlan}  ip {self.ip}/{self.prefix}")


def parse_ip_output(link_line: str, addr_line: str) -> tuple[str, int, str, int]:
    """(MAC, MTU, IPv4, prefix) from ``ip -o link show`` / ``ip -o -4 addr show`` (pure)."""
    mac, mtu, ip = _MAC_RE.search(link_line), _MTU_RE.search(link_line), _IPV4_RE.search(addr_line)
    if not (mac and mtu and ip):
        raise StepFailed(f"cannot read the pod interface: {link_line.strip()!r} "
                         f"{addr_line.strip()!r}")
    return mac.group(1), int(mtu.group(1)), ip.group(1), int(ip.group(2))


def show_pod(runtime: Runtime, pod: str, vf_address: str, emu: Any, nl: Netlink) -> PodView:
    link = runtime.exec(pod, "ip", "-o", "link", "show", IFNAME)
    addr = runtime.exec(pod, "ip", "-o", "-4", "addr", "show", IFNAME)
    mac, mtu, ip, prefix = parse_ip_output(link.stdout, addr.stdout)
    host = open_host(emu, nl)
    host.refresh()
    vf = host.sysfs.vf(vf_address)
    vlan = host.vf_admin.read(vf.pf_netdev, vf.index).vlan if vf.pf_netdev else 0
    return PodView(pod=pod, vf=vf_address, ifname=IFNAME, mac=mac, mtu=mtu, ip=ip,
                   prefix=prefix, vlan=vlan)


def _restored(original: snapshot.VfPicture, layout: Layout, nl: Netlink) -> bool:
    host = open_host(layout.emu, nl)
    host.refresh()
    vf = host.sysfs.vf(original.address)
    if vf.netdev != original.netdev or vf.netdev is None:
        return False
    link = nl.link(vf.netdev)
    return link is not None and link.mac == original.mac and link.mtu == original.mtu


def kill_and_recover(runtime: Runtime, pod: str, view: PodView, before: snapshot.HostPicture,
                     layout: Layout, nl: Netlink, *, container_id: str, valid: Attachment,
                     net: Mapping[str, Any]) -> str:
    """Destroy ``pod``'s netns out-of-band, let the runtime remove the pod, and when it did not
    DEL (podman skips CNI teardown once the netns is gone) run CNI GC as a CRI runtime does.
    Returns what happened, for the report."""
    original = next(v for v in before.vfs if v.address == view.vf)
    record = layout.cni_state / f"{container_id}-{IFNAME}"
    runtime.kill_netns(pod)
    begin = time.monotonic()
    try:
        runtime.remove(pod)
    except CniExecError as e:
        log.warning("runtime DEL of %s failed: %s", pod, e)
    if not record.exists():
        how = f"{runtime.name} removed the pod and ran CNI DEL on the vanished netns"
    else:
        gc_net = {**net, "cniVersion": "1.1.0"}
        CniRunner(layout.plugin_dirs, {**os.environ, **layout.cni_env()}).gc(gc_net, [valid])
        how = (f"{runtime.name} removed the pod without a CNI DEL (its netns was gone);\n"
               f"CNI GC with pod A as the only valid attachment cleaned up the stale one")
    if not wait_until(lambda: _restored(original, layout, nl), RECOVER_TIMEOUT, interval=0.05):
        raise StepFailed(f"VF {view.vf} did not come back as {original.netdev} ({original.mac})")
    took = time.monotonic() - begin
    return (f"{how}\nVF {view.vf} is back in the host as {original.netdev}, mac {original.mac}, "
            f"mtu {original.mtu} ({took:.2f}s)")
