"""A DHCP "LAN" for tests and hack/bench-cni: dnsmasq in the LAN netns + the reference dhcp daemon.

dnsmasq serves ``10.123.0.0/24`` on the LAN end of the ``lan`` veth (``--port=0``: no DNS,
``--no-ping``: no 3 s in-use probe before an offer, pid and lease files under the given temp
dir, ``-k``: foreground so we own its PID). The reference
``/usr/lib/cni/dhcp daemon -socketpath <tmp>/dhcp.sock`` runs in the host netns and enters
pod namespaces itself. Both are ended by PID, never by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.integration.test_cni_fallback_support import CNI_BIN, Lan, _connectable, sh, wait_for

SERVER_CIDR = "10.123.0.1/24"
DHCP_RANGE = "10.123.0.10,10.123.0.250,255.255.255.0,1h"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DhcpServices:
    socket: Path
    lease_file: Path

    def ipam(self) -> dict[str, str]:
        return {"type": "dhcp", "daemonSocketPath": str(self.socket)}

    def leased_macs(self) -> list[str]:
        if not self.lease_file.exists():
            return []
        return [
            line.split()[1] for line in self.lease_file.read_text().splitlines() if line.strip()
        ]


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def dhcp_services(tmp: Path, lan: Lan) -> Iterator[DhcpServices]:
    tmp.mkdir(parents=True, exist_ok=True)
    sh("ip", "-n", lan.netns, "addr", "add", SERVER_CIDR, "dev", lan.peer)
    pid_file, lease_file, sock = tmp / "dnsmasq.pid", tmp / "dnsmasq.leases", tmp / "dhcp.sock"
    log = (tmp / "dhcp-services.log").open("wb")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # "ip netns exec" execs dnsmasq in place: the PID we hold is dnsmasq's
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", lan.netns, "dnsmasq", "-k", "--port=0", "--conf-file=/dev/null",
             f"--interface={lan.peer}", "--bind-interfaces", f"--dhcp-range={DHCP_RANGE}",
             f"--pid-file={pid_file}", f"--dhcp-leasefile={lease_file}", "--user=root",
             "--dhcp-authoritative", "--no-ping"], stdout=log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen([str(CNI_BIN / "dhcp"), "daemon", "-socketpath", str(sock)],
                                      stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: pid_file.exists() or procs[0].poll() is not None, "dnsmasq to start")
        wait_for(
            lambda: _connectable(sock) or procs[1].poll() is not None, "the dhcp daemon socket"
        )
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"{dead} exited: {(tmp / 'dhcp-services.log').read_text()}"
        yield DhcpServices(socket=sock, lease_file=lease_file)
    finally:
        for proc in reversed(procs):
            _end(proc)
        log.close()
