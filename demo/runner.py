"""``sriovctl demo``: the whole story on an emulated SR-IOV host, cleaned up on every exit path.

Steps: emulated host (2 PF x 4 VF) -> device plugin + CNI agent -> simulated kubelet allocates a
VF to pod A and pod B -> the pods are started by podman (or, where podman cannot run, by plain
``ip netns`` + the CNI list run like a runtime) -> their interfaces -> ping A to B -> pod B's netns
is destroyed without a CNI DEL and its VF comes back -> teardown, before/after comparison.
Everything started is registered on one ``ExitStack`` right after it starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import TextIO

from demo import conflists, snapshot
from demo.cni_exec import Attachment
from demo.pods import PodView, kill_and_recover, make_runtime, show_pod
from demo.report import Report, StepFailed
from demo.stack import DEFAULT_CONFIG_DIR, Layout, Manifest, cni_agent, device_plugin, install_shim
from sriov.emulate import host as emulated
from sriov.emulate.spec import EmulationSpec
from sriov.inventory_format import format_inventory
from sriov.netlink import Netlink
from sriov.sysfs import SysfsReader

log = logging.getLogger(__name__)
RESOURCE = "intel.com/sriov_demo"
MAX_WORKDIR = 56
"""Longest work dir: ``<workdir>/plugins/<resource socket, ~40 chars>`` must fit sun_path."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    workdir: Path
    config_dir: Path = DEFAULT_CONFIG_DIR
    pf_prefix: str = "demopf"
    wire_prefix: str = "demow"
    bridge: str = "demobr0"
    pod_prefix: str = "demo-pod-"
    runtime: str = "auto"
    """auto (podman if it can run here, else netns), podman, or netns."""
    keep: bool = False


def run(options: DemoOptions, out: TextIO) -> int:
    """Run the demo; 0 when every step passed and nothing leaked."""
    report = Report(out)
    layout = Layout(workdir=options.workdir)
    if os.geteuid() != 0:
        report.note("✗ the demo needs root (network namespaces, veths): run it with sudo")
        return 1
    if len(str(layout.workdir.absolute())) > MAX_WORKDIR:
        report.note(f"✗ --workdir {layout.workdir} is too long: the device plugin's unix sockets "
                    f"live below it and socket paths are limited to 107 bytes; use a path of at "
                    f"most {MAX_WORKDIR} characters")
        return 1
    if (layout.workdir / "emu" / "sriov-emu.json").exists():
        report.note(f"✗ a demo is already up in {layout.workdir}: "
                    f"sriovctl demo --down --workdir {layout.workdir}")
        return 1
    for sub in (layout.logs, layout.ipam, layout.cni_state):
        sub.mkdir(parents=True, exist_ok=True)
    report.note(f"sriov-k8s demo (work dir {layout.workdir})")
    with Netlink() as nl, contextlib.ExitStack() as stack:
        try:
            _story(options, layout, nl, stack, report)
        except (StepFailed, Exception) as e:  # every step already printed its ✗ line
            log.debug("demo failed", exc_info=e)
            report.note(f"\n✗ demo failed: {e}; cleaning up")
        except KeyboardInterrupt:
            report.note("\n✗ interrupted; cleaning up")
            stack.close()
            _remove_workdir(layout, report)
            raise
        if options.keep and not report.failed:
            stack.pop_all()
            report.note(f"\n--keep: everything is still up. Tear it down with:\n"
                        f"  sriovctl demo --down --workdir {layout.workdir}")
            return 0
    if not options.keep or report.failed:
        _remove_workdir(layout, report)
    report.note(f"\nresult: {'FAILED' if report.failed else 'OK'} in {report.total()}")
    for failure in report.failed:
        report.note(f"  ✗ {failure}")
    return 1 if report.failed else 0


def _remove_workdir(layout: Layout, report: Report) -> None:
    shutil.rmtree(layout.workdir, ignore_errors=True)


def _story(options: DemoOptions, layout: Layout, nl: Netlink, stack: contextlib.ExitStack,
           report: Report) -> None:
    spec = EmulationSpec(pfs=2, vfs=4, pf_prefix=options.pf_prefix,
                         wire_prefix=options.wire_prefix, bridge=options.bridge)
    with report.step("emulated SR-IOV host: 2 PFs x 4 VFs (veth-backed)"):
        emulated.up(layout.emu, spec, nl)
        stack.callback(_down_if_up, layout.emu, nl)
        report.detail(format_inventory(SysfsReader(layout.emu).inventory()))
        before = snapshot.take(layout.emu, nl, layout.cni_state, layout.ipam)

    with report.step("device plugin + CNI agent started"):
        install_shim(layout)
        agent = cni_agent(layout)
        agent.start()
        stack.callback(agent.stop)
        agent.wait_ready(layout.agent_socket.exists, timeout=15)
        from deviceplugin.simulator import KubeletSimulator

        sim = KubeletSimulator(layout.plugin_dir, layout.pod_resources)
        sim.start()
        stack.callback(sim.stop)
        plugin = device_plugin(layout, options.config_dir / "pools.json")
        plugin.start()
        stack.callback(plugin.stop)
        plugin.wait_ready(lambda: len(sim.allocatable(RESOURCE)) == 8, timeout=20)
        report.detail(f"sriov-device-plugin pid {plugin.pid}, sriov-cni-agent pid {agent.pid} "
                      f"({layout.agent_socket})")

    pod_a, pod_b = options.pod_prefix + "a", options.pod_prefix + "b"
    pod_netns: list[str] = []
    with report.step(f"kubelet simulator: registered {RESOURCE}, allocated one VF per pod"):
        report.detail(f"{RESOURCE}: capacity {sim.capacity(RESOURCE)}, "
                      f"allocatable {len(sim.allocatable(RESOURCE))}")
        # pod namespace = pod name: the netns runtime puts both in CNI_ARGS like that
        vf_of = {}
        for pod in (pod_a, pod_b):
            reply = sim.allocate(pod, pod, "main", RESOURCE, 1)
            env = dict(reply.container_responses[0].envs)
            vf_of[pod] = sim.allocations()[-1].device_ids[0]
            report.detail(f"pod {pod}: VF {vf_of[pod]}")
            for key, value in sorted(env.items()):
                report.detail(f"    {key}={value}")

    with report.step("pods started with the sriov CNI"):
        runtime, why = make_runtime(options.runtime, layout)
        stack.callback(runtime.close)
        report.detail(f"runtime: {runtime.name}" + (f" ({why})" if why else ""))
        template = conflists.with_ipam_dir(
            conflists.load(options.config_dir / "sriov-net.conflist"), layout.ipam)
        # one network for both pods (one IPAM range), the VF per pod: Multus writes the pod's
        # deviceID into the config it hands the plugin, so the network file is per pod here
        multus = "deviceID in the config, as Multus passes it"
        net_a = conflists.with_device_id(template, vf_of[pod_a])
        if runtime.passes_pod_namespace:
            net_b = conflists.with_pod_resources(template, layout.pod_resources)
            how_b = "no deviceID: the plugin asked pod-resources for the pod's VF"
        else:  # podman sets only K8S_POD_NAME in CNI_ARGS: pod-resources needs the namespace
            net_b = conflists.with_device_id(template, vf_of[pod_b])
            how_b = multus
        ids: dict[str, str] = {}
        for pod, net, how in ((pod_a, net_a, multus), (pod_b, net_b, how_b)):
            ids[pod] = runtime.run(pod, runtime.add_network(net))
            pod_netns.append(runtime.netns_path(pod))
            report.detail(f"{pod}: {how}")
        Manifest(runtime=runtime.name, pids={"agent": agent.pid or 0, "plugin": plugin.pid or 0},
                 argv={"agent": agent.argv, "plugin": plugin.argv},
                 pods=[pod_a, pod_b], netns=pod_netns).save(layout)

    with report.step("pod interfaces"):
        views: dict[str, PodView] = {}
        for pod in (pod_a, pod_b):
            views[pod] = show_pod(runtime, pod, vf_of[pod], layout.emu, nl)
            report.detail(views[pod].line())

    with report.step(f"ping {pod_a} -> {pod_b} over the VFs"):
        if views[pod_a].ip == views[pod_b].ip:
            raise StepFailed(f"both pods got {views[pod_a].ip}: IPAM handed out one address twice")
        ping = runtime.exec(pod_a, "ping", "-c", "3", "-i", "0.2", "-W", "2", views[pod_b].ip)
        summary = [ln for ln in ping.stdout.splitlines() if "packets" in ln or "min/avg" in ln]
        report.detail("\n".join(summary) or ping.stderr.strip())
        if ping.returncode != 0:
            raise StepFailed(f"ping failed (exit {ping.returncode})")

    with report.step(f"{pod_b}'s netns destroyed without CNI DEL; its VF comes back"):
        valid = Attachment(container_id=ids[pod_a], netns="", ifname="eth0")
        how = kill_and_recover(runtime, pod_b, views[pod_b], before, layout, nl,
                               container_id=ids[pod_b], valid=valid, net=net_b)
        report.detail(how)

    if options.keep:
        return
    with report.step("teardown: pod A removed (CNI DEL), daemons stopped"):
        runtime.remove(pod_a)
        sim.release(pod_a, pod_a)
        sim.release(pod_b, pod_b)
        for daemon in (plugin, agent):
            status = daemon.stop()
            report.detail(f"{daemon.name} exited with status {status}")
        runtime.close()
        report.detail("inventory after:\n" + format_inventory(SysfsReader(layout.emu).inventory()))
    _summary(before, layout, nl, report, spec, pod_netns)


def _summary(before: snapshot.HostPicture, layout: Layout, nl: Netlink, report: Report,
             spec: EmulationSpec, pod_netns: list[str]) -> None:
    with report.step("summary: nothing leaked"):
        after = snapshot.take(layout.emu, nl, layout.cni_state, layout.ipam)
        problems = snapshot.differences(before, after)
        report.check(not problems, f"{len(after.vfs)} VFs: names, MACs, MTUs and PF-side "
                     "settings identical to before" if not problems else "; ".join(problems))
        report.check(not after.state_files, "no CNI state files")
        report.check(not after.leases, "no IPAM leases")
        _down_if_up(layout.emu, nl)
        left = [link.name for link in nl.links()
                if link.name.startswith((spec.pf_prefix, spec.wire_prefix, spec.bridge))]
        report.check(not left, "no links left" if not left else f"links left: {left}")
        left_ns = [ns for ns in pod_netns if Path(ns).exists()]
        report.check(not left_ns, f"no pod netns left ({len(pod_netns)} created)" if not left_ns
                     else f"netns left: {left_ns}")
        if report.failed:
            raise StepFailed("something leaked")
        report.note("      NOTHING LEAKED")


def _down_if_up(root: Path, nl: Netlink) -> None:
    if emulated.host_is_emulated(root) or (root / "sys").exists():
        emulated.down(root, nl)
