"""``sriov-device-plugin``: the composition root (real paths, threads, signals).

Exit status: 0 after SIGTERM/SIGINT, 1 when the initial config is invalid or the
plugin cannot start, 2 for bad flags (argparse).

Flags: ours, plus every flag of upstream's ``sriovdp`` binary (``--config-file``,
``--resource-prefix``, ``--use-cdi``, glog's ``-v``, ``-logtostderr``, ``-log_dir``...)
and of its image's entrypoint (``--log-level=N``, ``--log-dir=D``), read the way Go's
flag package reads them (:mod:`deviceplugin.goflags`), so upstream's DaemonSet args work
unchanged. See docs/compatibility.md.

``--cni-agent-socket`` starts ``cni.agent`` in-process; it is imported lazily here
and only here (the one allowed exception to "deviceplugin never imports cni").
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from deviceplugin import logsetup
from deviceplugin.allocation import DEFAULT_DEVINFO_DIR
from deviceplugin.cdi import DEFAULT_CDI_DIR, CdiSpecWriter
from deviceplugin.dirwatch import InotifyEvent, Mask, Watcher
from deviceplugin.errors import DevicePluginError
from deviceplugin.eventfilter import EventFilter, Rescan
from deviceplugin.fingerprint import SysfsFingerprint
from deviceplugin.goflags import FlagError, normalize
from deviceplugin.lifecycle import DEFAULT_PLUGIN_DIR, PluginManager
from deviceplugin.metrics import Metrics
from deviceplugin.pluginwatcher import DEFAULT_PLUGINS_REGISTRY
from deviceplugin.pool import Policy
from deviceplugin.scanner import ConfigFile, HostScanner, SysfsCarrier, registry_for
from deviceplugin.servicer import ServiceOptions
from deviceplugin.sysfswatch import SysfsWatch
from sriov.ddp import DdpTool
from sriov.errors import PoolConfigError, SriovError
from sriov.events import DeviceEvent
from sriov.host import open_host
from sriov.netlink import Netlink
from sriov.netlink_devlink import DevlinkRdma
from sriov.pools import DEFAULT_RESOURCE_PREFIX
from sriov.types import Inventory

log = logging.getLogger("deviceplugin")

DEFAULT_CONFIG = Path("/etc/pcidp/config.json")
SWITCH_INTERVAL_S = 0.001


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sriov-device-plugin",
                                description="Kubelet device plugin for SR-IOV VFs (v1beta1).")
    p.add_argument("--config", "--config-file", dest="config", type=Path,
                   default=DEFAULT_CONFIG, help="pool config (resourceList JSON); "
                   "watched and reloaded on change (default: %(default)s)")
    p.add_argument("--resource-prefix", default=DEFAULT_RESOURCE_PREFIX,
                   help="prefix for pools without resourcePrefix (default: %(default)s)")
    p.add_argument("--plugin-dir", type=Path, default=DEFAULT_PLUGIN_DIR,
                   help="kubelet device-plugin dir (default: %(default)s)")
    p.add_argument("--sysfs-root", type=Path, default=Path("/"),
                   help="root containing sys/ (an emulated tree for dev; default: /)")
    p.add_argument("--devinfo-dir", type=Path, default=DEFAULT_DEVINFO_DIR,
                   help="NPWG device-info dir (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="Prometheus metrics HTTP port, 0 = off (default)")
    p.add_argument("--policy", choices=[x.value for x in Policy], default=Policy.SPREAD.value,
                   help="GetPreferredAllocation placement across PFs (default: spread)")
    p.add_argument("--use-cdi", action="store_true",
                   help="write a CDI spec per pool and also return CDI device names "
                   "<prefix>/net-pci=<pci>")
    p.add_argument("--cdi-dir", type=Path, default=DEFAULT_CDI_DIR,
                   help="CDI spec dir for --use-cdi (default: %(default)s)")
    p.add_argument("--plugins-registry", type=Path, default=None, metavar="DIR",
                   help="register through kubelet's plugin watcher: serve "
                   "pluginregistration on a socket per pool in DIR (e.g. "
                   f"{DEFAULT_PLUGINS_REGISTRY}) instead of calling kubelet.sock")
    p.add_argument("--rescan-interval", type=float, default=30.0,
                   help="safety rescan period in seconds (default: 30)")
    p.add_argument("--cni-agent-socket", type=Path, default=None,
                   help="also run the sriov CNI agent in-process on this socket")
    p.add_argument("--cni-agent-client-uid", type=_uid, default=None, metavar="UID",
                   help="the embedded CNI agent also accepts requests from this uid (its "
                   "--client-uid; root and our own uid always may)")
    p.add_argument("--strict-config", action="store_true",
                   help="refuse a pool config with unknown keys or values that never match "
                   "(default: accept it as upstream does and log a warning per problem)")
    p.add_argument("--log-level", type=logsetup.level, default=None, metavar="LEVEL|N",
                   help="debug, info (default), warning, error; or a glog verbosity number "
                   "as upstream's entrypoint takes it (N <= 10: info, N > 10: debug)")
    p.add_argument("--log-dir", default=None, metavar="D",
                   help="upstream entrypoint: log to a file under <log-root>/D and to stderr")
    p.add_argument("--log-root", type=Path, default=logsetup.DEFAULT_LOG_ROOT,
                   help="directory --log-dir is relative to (default: %(default)s)")
    glog = p.add_argument_group("glog flags of upstream's sriovdp (single or double dash)")
    glog.add_argument("--v", type=logsetup.verbosity, default=None, metavar="N",
                      help="glog verbosity, as --log-level=N")
    glog.add_argument("--logtostderr", action="store_true", help="log to stderr only")
    glog.add_argument("--alsologtostderr", action="store_true",
                      help="with a log file: also everything to stderr")
    glog.add_argument("--stderrthreshold", type=logsetup.severity, default=None,
                      metavar="SEVERITY", help="with a log file: what else goes to stderr "
                      "(INFO, WARNING, ERROR (default), FATAL)")
    glog.add_argument("--log_dir", dest="log_dir_glog", default=None, metavar="DIR",
                      help=f"write the log to DIR/{logsetup.LOG_FILE_NAME}")
    glog.add_argument("--log_file", default=None, metavar="FILE", help="write the log to FILE")
    glog.add_argument("--vmodule", type=logsetup.vmodule, default=None,
                      help="accepted and checked as glog does; no effect")
    glog.add_argument("--log_backtrace_at", type=logsetup.backtrace_at, default=None,
                      help="accepted and checked as glog does; no effect")
    glog.add_argument("--log_link", default=None, help="accepted; no effect")
    glog.add_argument("--logbuflevel", type=int, default=None, help="accepted; no effect")
    return p


def _uid(text: str) -> int:
    uid = int(text)  # argparse turns the ValueError into "invalid _uid value"
    if not 0 <= uid < 2**32 - 1:  # (uid_t)-1 means "no uid" to the kernel
        raise argparse.ArgumentTypeError(f"{text}: not a uid")
    return uid


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Our flags and upstream's, read as Go's flag package reads them (exit 2 on errors)."""
    parser = build_parser()
    try:
        normalized = normalize(argv, parser)
    except FlagError as e:
        parser.error(str(e))
    args = parser.parse_args(normalized.argv)
    if args.cni_agent_client_uid is not None and args.cni_agent_socket is None:
        parser.error("--cni-agent-client-uid needs --cni-agent-socket")
    args.ignored_args = normalized.ignored
    return args


def _serve_cni_agent(socket: Path, stop: threading.Event, sysfs_root: Path,
                     pool_config: Path, client_uid: int | None) -> None:
    import cni.agent as agent  # lazy: documented exception to the layering rule

    agent.serve(socket, stop, sysfs_root=sysfs_root, pool_config=pool_config,
                client_uid=client_uid)


def _start_cni_agent(socket: Path, stop: threading.Event, sysfs_root: Path,
                     pool_config: Path, client_uid: int | None = None) -> threading.Thread:
    thread = threading.Thread(target=_serve_cni_agent, daemon=True, name="cni-agent",
                              args=(socket, stop, sysfs_root, pool_config, client_uid))
    thread.start()
    return thread


def _start_device_events(on_event: Callable[[DeviceEvent], None]) -> object | None:
    """udev (pci, net) + rtnetlink link events -> rescan. Optional: the safety timer remains."""
    try:
        from sriov.events import EventStream
        stream = EventStream()
        stream.start(on_event)
    except Exception as e:
        log.warning("no udev/netlink events (rescans on timer and inotify only) error=%s", e)
        return None
    return stream


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    metrics = Metrics()
    config = ConfigFile(args.config, args.resource_prefix, strict=args.strict_config,
                        on_invalid=lambda e: metrics.config_reload_failures.inc())
    try:
        initial = config.load_initial()
    except PoolConfigError as e:
        log.error("invalid config path=%s error=%s", args.config, e)
        return 1
    metrics.config_valid.set(1)
    if not initial.pools:
        log.warning("config has no pools path=%s", args.config)
    netlink = Netlink()
    host = open_host(args.sysfs_root, netlink)

    def inventory() -> Inventory:
        host.refresh()  # emulated host: sync netdev names/carrier from the real veths
        return host.sysfs.inventory()

    # an emulated host's tree is only synced with its veths by a full rescan: no shortcut
    fingerprint = None if host.emulated else SysfsFingerprint(args.sysfs_root)
    scanner = HostScanner(config, inventory, SysfsCarrier(args.sysfs_root), fingerprint,
                          ddp=DdpTool.find(),
                          # the kernel's devlink knows real devices only, not emulated ones
                          devlink_rdma=None if host.emulated else DevlinkRdma())
    registry = registry_for(scanner, safety_interval_s=args.rescan_interval)
    dev_root = Path(args.sysfs_root) / "dev"  # /dev on a real host, <root>/dev emulated
    options = ServiceOptions(policy=Policy(args.policy), use_cdi=args.use_cdi,
                             devinfo_dir=args.devinfo_dir, dev_root=dev_root)
    manager = PluginManager(args.plugin_dir, registry, options, metrics,
                            plugins_registry=args.plugins_registry)
    cdi = CdiSpecWriter(args.cdi_dir, dev_root) if args.use_cdi else None
    if cdi is not None:
        cdi.remove_stale()
        registry.add_listener(lambda snap: cdi.update(snap.pools))
    sysfs_watch = SysfsWatch(args.sysfs_root, registry.trigger)
    def on_config_events(events: list[InotifyEvent]) -> None:
        if config.affected_by(e.name for e in events):
            registry.trigger()

    config_watch = Watcher(on_config_events, name="dp-configwatch")
    registry.add_listener(lambda snap: sysfs_watch.refresh(scanner.last_inventory))
    registry.add_listener(lambda snap: metrics.config_valid.set(config.last_error is None))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda *_: registry.trigger())  # operator: rescan now
    started: list[object] = []
    try:
        registry.start()
        started.append(registry)
        sysfs_watch.start(scanner.last_inventory)
        started.append(sysfs_watch)
        config_watch.watch(args.config.parent, Mask.dir_changes() | Mask.MODIFY)
        config_watch.start()
        started.append(config_watch)
        manager.start()
        started.append(manager)
        filt = EventFilter(carrier_needs_refresh=host.emulated)

        def on_event(event: DeviceEvent) -> None:
            action = filt.action(event, scanner.last_inventory)
            if action is not None:
                registry.trigger(health_only=action is Rescan.HEALTH)

        events = _start_device_events(on_event)
        if events is not None:
            started.append(events)
        if args.metrics_port:
            metrics.serve(args.metrics_port)
        agent = None
        if args.cni_agent_socket is not None:
            agent = _start_cni_agent(args.cni_agent_socket, stop, args.sysfs_root, args.config,
                                     args.cni_agent_client_uid)
        log.info("running pools=%s plugin_dir=%s", len(registry.snapshot.pools), args.plugin_dir)
        stop.wait()
        log.info("stopping")
        if agent is not None:
            agent.join(timeout=10)  # it removes its socket on the way out
        return 0
    except (SriovError, DevicePluginError, OSError) as e:
        log.error("cannot start error=%s", e)
        return 1
    finally:
        for part in reversed(started):
            closer = getattr(part, "stop", getattr(part, "close", None))
            if closer is not None:
                closer()
        if cdi is not None:
            cdi.remove_all()
        netlink.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        logsetup.configure(logsetup.options_from(args, args.log_root))
    except OSError as e:
        print(f"sriov-device-plugin: cannot open the log file: {e}", file=sys.stderr)
        return 1
    if args.ignored_args:
        log.warning("arguments after the first non-flag are ignored (as upstream) args=%s",
                    " ".join(args.ignored_args))
    # Allocate must not wait 5 ms (the default) for the GIL while the event thread
    # parses a burst of netlink messages: hand the GIL over every 1 ms instead
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return run(args, stop)


if __name__ == "__main__":
    raise SystemExit(main())
