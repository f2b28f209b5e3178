"""In-process (standalone) CNI execution and the wiring of the real handlers.

:class:`Runtime` holds the process-wide warm resources (netlink socket, in-process host-local);
the agent keeps one for its lifetime, standalone mode builds one per invocation. Environment
knobs (all optional): ``SRIOV_CNI_STATE_DIR`` (default /var/lib/cni/sriov), ``SRIOV_SYSFS_ROOT``
(default /, an emulated host's root in dev/test), ``SRIOV_CNI_TIMEOUT`` (seconds, default 55),
``SRIOV_CNI_EXEC_IPAM=1`` (always exec the IPAM delegate, never in-process host-local),
``SRIOV_CNI_POOL_CONFIG`` (device plugin pool config: ADD takes only VFs of its pools; unset =
any VF of the node, see :mod:`cni.pool_guard`), ``SRIOV_CNI_LOG_DIRS`` (where a netconf's
``logFile`` may be, see :mod:`cni.log_file`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from cni import skel
from cni.errors import CniCode, CniError
from cni.faults import FAULT_ENV, fault_hook
from cni.host_local import HostLocal
from cni.ipam import IpamRunner, make_ipam
from cni.log_file import log_dirs_from_env
from cni.netconf import NetConf
from cni.plugin import Plugin
from cni.podresources import PodResourcesLookup
from cni.pool_guard import POOL_CONFIG_ENV, PoolGuard, pool_config_from_env
from cni.protocol import SUPPORTED_VERSIONS, CmdArgs
from cni.state import DEFAULT_STATE_DIR, StateStore
from sriov.types import PciAddress, VirtualFunction

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
EXEC_IPAM_ENV = "SRIOV_CNI_EXEC_IPAM"
ABOUT = "sriov-k8s CNI plugin (SR-IOV VF, DPDK and macvlan/ipvlan fallback)"


TAIL_THREADS = 16
"""Threads per agent process that finish DELs after their reply (each holds its attachment's
locks). A tail mostly waits in the kernel (an RCU grace period), so many overlap: with 4, the
tails of a 64-DEL burst ended 1.9x later than Go's DEL batch; with 16, 0.6x."""


def _memo(factory: Callable[[], Any]) -> Callable[[], Any]:
    """One instance per calling thread for the life of one request's plugin: a host holds its
    thread's netlink handle, and a DEL's deferred tail runs on another thread than the DEL."""
    boxes: dict[int, Any] = {}
    lock = threading.Lock()

    def get() -> Any:
        with lock:
            me = threading.get_ident()
            if me not in boxes:
                boxes[me] = factory()
            return boxes[me]

    return get


def _per_thread(factory: Callable[[], Any]) -> Callable[[], Any]:
    """Like :func:`_memo` but one instance per calling thread (the agent's fixed workers)."""
    local = threading.local()

    def get() -> Any:
        value = getattr(local, "value", None)
        if value is None:
            value = local.value = factory()
        return value

    return get


class Runtime:
    """Warm resources shared by the invocations of one process."""

    def __init__(
        self,
        *,
        sysfs_root: Path = Path("/"),
        state_dir: Path = DEFAULT_STATE_DIR,
        prefer_in_process_ipam: bool = True,
        faults: Callable[[str], None] | None = None,
        pool_config: Path | None = None,
        deferred_del: bool = False,
    ) -> None:
        self.sysfs_root = sysfs_root
        self.state_dir = state_dir
        self.prefer_in_process_ipam = prefer_in_process_ipam
        self.faults = faults
        """Test hook (``SRIOV_CNI_FAULT``, :mod:`cni.faults`) given to every plugin; None: inert."""
        self.host_local = HostLocal()
        self.pool_guard = None if pool_config is None else PoolGuard(pool_config, self._read_vf)
        """One per runtime: the agent re-reads the config only when the file changes."""
        self.netlink = _per_thread(self._open_netlink)  # pyroute2 objects are per-thread
        self._opened: list[Any] = []
        self._request = threading.local()
        """The tails deferred by the request this thread is answering (:meth:`after_reply`)."""
        self._tails: ThreadPoolExecutor | None = None
        if deferred_del:
            from concurrent.futures import ThreadPoolExecutor  # agent only: not on the exec path

            self._tails = ThreadPoolExecutor(max_workers=TAIL_THREADS,
                                             thread_name_prefix="cni-del-tail")
        """The agent's runner of DEL tails (a VF's move home and restore, a fallback link's
        deletion) after the reply: the runtime does not wait for the kernel's netns move or
        link deletion (one RCU grace period each, 15-30 ms) to answer. The tail keeps the
        attachment's (and the VF's) locks, so whatever comes next for that attachment or VF
        waits for it (docs/cni.md "Deferred DEL")."""

    def defer(self, tail: Callable[[], None]) -> None:
        """Run ``tail`` after the current request's reply (:meth:`after_reply`), in this
        process; now when this runtime defers nothing."""
        collected = getattr(self._request, "tails", None)
        if collected is not None:
            collected.append(tail)
        else:
            self._start(tail)

    def _start(self, tail: Callable[[], None]) -> None:
        if self._tails is None:
            tail()
            return
        try:
            self._tails.submit(tail)
        except RuntimeError:  # shutting down: run it here (its locks must be released)
            tail()

    @contextlib.contextmanager
    def after_reply(self) -> Iterator[None]:
        """The agent answers one request inside this block: the DEL tails the request deferred
        start when it ends (after the reply is sent, or failed to send), never before."""
        self._request.tails = []
        try:
            yield
        finally:
            tails, self._request.tails = self._request.tails, None
            for tail in tails:
                self._start(tail)

    def _open_netlink(self) -> Any:
        from sriov.netlink import Netlink  # pyroute2: only when a mode really needs it

        nl = Netlink()
        self._opened.append(nl)
        return nl

    def _read_vf(self, device: PciAddress) -> VirtualFunction:
        from sriov.sysfs import SysfsReader  # sysfs only: the guard needs no netlink

        return SysfsReader(self.sysfs_root).device(device)  # a VF or a NIC (pooled alike)

    def _open_host(self) -> Any:
        from sriov.host import open_host

        return open_host(self.sysfs_root, self.netlink())

    def plugin(self, env: Mapping[str, str], stderr: TextIO, started: int | None = None) -> Plugin:
        """The handlers of one request; ``started``: when it started (CLOCK_BOOTTIME ns, an
        upper bound; default now), which decides whether an ADD came after a DEL."""
        def ipam_factory(conf: NetConf, args: CmdArgs) -> IpamRunner:
            runner = make_ipam(
                conf, args.path, env, stderr=stderr, prefer_in_process=self.prefer_in_process_ipam
            )
            return self.host_local if isinstance(runner, HostLocal) else runner

        pod_resources = PodResourcesLookup(self.sysfs_root)
        plugin = Plugin(
            netlink_factory=self.netlink,
            host_factory=_memo(self._open_host),
            ipam_factory=ipam_factory,
            state=StateStore(self.state_dir, faults=self.faults),
            device_lookup=pod_resources,
            claim_check=pod_resources.verify_claim,
            device_guard=self.pool_guard.check if self.pool_guard is not None else None,
            sysfs_root=self.sysfs_root,
        )
        if self.faults is not None:
            plugin.faults = self.faults
        if self._tails is not None:
            plugin.defer = self.defer
        if started is not None:
            plugin.started = started
        return plugin

    def close(self) -> None:
        """Wait for the deferred DEL tails (a stopping agent finishes every restore it
        answered), then close the netlink handles."""
        if self._tails is not None:
            self._tails.shutdown(wait=True)
        for nl in self._opened:
            close = getattr(nl, "close", None)
            if close:
                close()
        self._opened.clear()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Runtime:
        return cls(
            sysfs_root=Path(env.get("SRIOV_SYSFS_ROOT") or "/"),
            state_dir=Path(env.get("SRIOV_CNI_STATE_DIR") or DEFAULT_STATE_DIR),
            prefer_in_process_ipam=env.get(EXEC_IPAM_ENV, "") not in ("1", "true"),
            faults=fault_hook(env.get(FAULT_ENV)),
            pool_config=pool_config_from_env(env.get(POOL_CONFIG_ENV)),
        )


def _timeout(env: Mapping[str, str]) -> float:
    try:
        return float(env.get("SRIOV_CNI_TIMEOUT") or skel.DEFAULT_TIMEOUT)
    except ValueError:
        return skel.DEFAULT_TIMEOUT


def run(
    env: Mapping[str, str],
    stdin: bytes | BinaryIO,
    stdout: TextIO,
    stderr: TextIO,
    *,
    runtime: Runtime | None = None,
    timeout: float | None = None,
    started: int | None = None,
) -> int:
    """One CNI invocation in this process; returns the exit status."""
    if isinstance(stdin, bytes | bytearray):
        data = bytes(stdin)
    else:
        try:
            data = stdin.read()
        except OSError as e:
            return skel.write_error(
                stdout, CniError(CniCode.IO_FAILURE, "error reading from stdin", str(e)), "1.1.0"
            )
    owned = runtime is None
    rt = runtime or Runtime.from_env(env)
    try:
        return skel.dispatch(
            env,
            data,
            stdout,
            stderr,
            rt.plugin(env, stderr, started),
            timeout=_timeout(env) if timeout is None else timeout,
            log_dirs=log_dirs_from_env(env),
        )
    finally:
        if owned:
            rt.close()


def main() -> int:
    env = dict(os.environ)
    if not env.get("CNI_COMMAND"):
        sys.stderr.write(
            f"{ABOUT}\nCNI protocol versions supported: {', '.join(SUPPORTED_VERSIONS)}\n"
        )
        return 0
    return run(env, sys.stdin.buffer, sys.stdout, sys.stderr,
               started=process_started(os.getpid()))


def process_started(pid: int) -> int | None:
    """Upper bound of a process's start time, CLOCK_BOOTTIME ns (``/proc/<pid>/stat`` field 22,
    in clock ticks); None when it cannot be read (the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return (ticks + 1) * 1_000_000_000 // hz


if __name__ == "__main__":
    raise SystemExit(main())
