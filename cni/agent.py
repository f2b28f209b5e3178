"""The resident CNI agent (``sriov-cni-agent``): serves ``sriov`` shim requests.

A fixed pool of threads per process; the per-VF flock in the state store serialises work on
one VF. With ``--workers N`` (default: two per CPU, 2 to 8) N pre-forked processes accept
on the one socket (:mod:`cni.agent_workers`), so a burst is not bound to one GIL. Each process
keeps one warm :class:`cni.main.Runtime` (netlink sockets, in-process host-local) and runs
every request through the same :func:`cni.skel.dispatch` as standalone mode, with the
forwarded env/stdin, so both modes behave identically. Socket dir 0700, socket 0600; the
socket rules (one agent per path, directory and peer checks, frame limits) are in
:mod:`cni.agent_socket`, the protocol in docs/shim-protocol.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from cni import agent_socket, skel, trace
from cni.agent_workers import WorkerPool, default_workers
from cni.faults import FAULT_ENV, fault_hook
from cni.log_file import LOG_DIRS_ENV, log_dirs_from, log_dirs_from_env
from cni.main import EXEC_IPAM_ENV, Runtime, process_started
from cni.pool_guard import POOL_CONFIG_ENV, pool_config_from_env
from cni.shim import DEFAULT_SOCKET, decode_env
from cni.state import DEFAULT_STATE_DIR, StateStore

log = logging.getLogger(__name__)
HandlersFactory = Callable[[Mapping[str, str], TextIO], skel.Handlers]
WORKERS = 16
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of pod attaches made the shim's (timeout,
    # hence non-blocking) connect() fail with EAGAIN. The kernel caps this at somaxconn.
    request_queue_size = 512
    agent: CniAgent
    # A fixed pool instead of a thread per connection: pyroute2 0.9 keeps per-thread sockets and
    # event loops inside an IPRoute until it is closed, so fresh threads leaked one socket per
    # request; each worker keeps its own warm Netlink (cni.main.Runtime.netlink is per thread).
    workers: ThreadPoolExecutor | None = None

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        if self.workers is None:
            self.workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cni-worker")
        self.workers.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        if self.workers is not None:
            self.workers.shutdown(wait=True)  # requests in flight finish and get their reply


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        agent: CniAgent = self.server.agent  # type: ignore[attr-defined]
        pid, uid = agent_socket.peer_uid(sock)
        if uid not in agent.client_uids:
            log.warning("refusing a request from pid %d uid %d (allowed uids: %s)", pid, uid,
                        sorted(agent.client_uids))
            return
        try:
            raw_env, stdin = agent_socket.read_request(sock)
        except agent_socket.FrameTooLarge as e:
            log.warning("refusing request from pid %d: %s", pid, e)
            with contextlib.suppress(OSError):
                sock.sendall(e.reply)
            return
        except (OSError, ConnectionError) as e:
            log.warning("dropping malformed request: %s", e)
            return
        env = decode_env(raw_env)
        with agent.request_scope():  # a DEL's deferred tail starts once the reply is out
            # a late ADD is judged by when the shim that sent it started, not when it got here
            status, out, err = agent.handle(env, stdin, process_started(pid) if pid > 0 else None)
            try:
                sock.sendall(agent_socket.encode_reply(status, err, out))
            except OSError as e:
                log.warning(
                    "cannot send reply for %s %s: %s",
                    env.get("CNI_COMMAND"),
                    env.get("CNI_CONTAINERID"),
                    e,
                )


class CniAgent:
    def __init__(self, socket_path: Path, handlers_factory: HandlersFactory,
                 log_dirs: Sequence[Path] | None = None, client_uid: int | None = None) -> None:
        """``client_uid``: a non-root uid whose processes may also send requests (root and
        the agent's own uid always may)."""
        self.socket_path = Path(socket_path)
        self.handlers_factory = handlers_factory
        self.log_dirs = tuple(log_dirs_from_env(os.environ) if log_dirs is None else log_dirs)
        """Where a netconf's logFile may be: the agent's setting, never the forwarded env's."""
        self.client_uids = frozenset(
            {0, os.geteuid()} | ({client_uid} if client_uid is not None else set()))
        self._server: _Server | None = None
        self._lock: int | None = None
        self.owns_socket = True
        """False in a pre-forked worker: the parent removes the shared socket and its claim."""
        self.request_scope: Callable[[], contextlib.AbstractContextManager[None]] = (
            contextlib.nullcontext)
        """Wraps the answer of each request (the runtime's :meth:`cni.main.Runtime.after_reply`:
        work a DEL deferred starts after its reply)."""

    def handle(self, env: Mapping[str, str], stdin: bytes,
               started: int | None = None) -> tuple[int, bytes, bytes]:
        """Run one forwarded invocation; returns (exit status, stdout, stderr).

        Its log records go to its own stderr at its netconf's ``logLevel``; the agent's log gets
        them only at the agent's ``--log-level`` (:mod:`cni.logging_setup`). ``started``: when
        the shim that sent it started (CLOCK_BOOTTIME ns; a late ADD is judged by it)."""
        out, err = io.StringIO(), io.StringIO()
        handlers = self.handlers_factory(env, err)
        if started is not None and hasattr(handlers, "started"):
            handlers.started = started
        status = skel.dispatch(env, stdin, out, err, handlers, log_dirs=self.log_dirs)
        # surrogateescape: an env value with undecodable bytes may be echoed into logs/errors
        return (status, out.getvalue().encode("utf-8", "surrogateescape"),
                err.getvalue().encode("utf-8", "surrogateescape"))

    def bind(self) -> None:
        """Claim the path (directory check + lock, see cni.agent_socket), then listen.

        Raises AgentSocketError (a RuntimeError) without touching the path when another
        agent holds it."""
        lock = agent_socket.claim(self.socket_path)
        try:
            agent_socket.replace_stale(self.socket_path)
            old_umask = os.umask(0o177)
            try:
                self._server = _Server(str(self.socket_path), _Handler)
            finally:
                os.umask(old_umask)
            os.chmod(self.socket_path, 0o600)
        except BaseException:
            agent_socket.release(lock)
            raise
        self._lock = lock
        self._server.agent = self
        log.info("CNI agent listening on %s", self.socket_path)

    def listening_socket(self) -> socket.socket:
        assert self._server is not None, "bind() first"
        return self._server.socket

    def serve_forever(self) -> None:
        if self._server is None:
            self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self.close()

    def start(self) -> threading.Thread:
        """Bind and serve in a background thread (tests, embedding)."""
        self.bind()
        thread = threading.Thread(target=self.serve_forever, name="cni-agent", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def close(self) -> None:
        if self._server is not None:
            self._server.server_close()
            self._server = None
        if self._lock is not None and self.owns_socket:  # only the agent that claimed the path
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            agent_socket.release(self._lock)
            self._lock = None


def warm_runtime(sysfs_root: Path, state_dir: Path, pool_config: Path | None = None,
                 deferred_del: bool = True) -> Runtime:
    """The agent's runtime, with pyroute2 imported and a netlink socket open up front; DELs
    whose deferred tail a killed agent never ran are finished in the background."""
    runtime = Runtime(sysfs_root=sysfs_root, state_dir=state_dir, pool_config=pool_config,
                      deferred_del=deferred_del,
                      faults=fault_hook(os.environ.get(FAULT_ENV)),  # test hook, inert unless set
                      # SRIOV_CNI_EXEC_IPAM=1: exec host-local too, as standalone mode does
                      prefer_in_process_ipam=os.environ.get(EXEC_IPAM_ENV, "") not in ("1", "true"))
    store = StateStore(state_dir)
    try:  # leftovers of writers killed mid-write, tombstones older than any queued ADD
        store.sweep_tmp()
        store.prune_tombstones()
        store.sweep_attachment_locks()
    except OSError as e:
        log.warning("cannot tidy the state dir %s: %s", state_dir, e)
    try:
        runtime.netlink()  # warm: pay the pyroute2 import once, not per pod
    except Exception as e:  # the agent still serves fallback/IPAM-only requests
        # the per-thread factory retries on each worker's first use
        log.warning("netlink not available yet (%s); opening it on first use", e)
    plugin = runtime.plugin({}, sys.stderr)

    def finish_pending() -> None:
        plugin.finish_pending()

    runtime.defer(finish_pending)
    return runtime


def serve(socket_path: Path, stop: threading.Event, *, sysfs_root: Path = Path("/"),
          state_dir: Path = DEFAULT_STATE_DIR, pool_config: Path | None = None,
          client_uid: int | None = None) -> None:
    """Serve until ``stop`` is set: the device plugin's ``--cni-agent-socket`` embedding.

    ``pool_config``: the device plugin's ``--config``; ADD then takes only VFs of its pools.
    ``client_uid``: a non-root uid allowed to send requests (the agent's ``--client-uid``)."""
    runtime = warm_runtime(sysfs_root, state_dir, pool_config)
    agent = CniAgent(socket_path, runtime.plugin, client_uid=client_uid)
    agent.request_scope = runtime.after_reply
    agent.bind()
    server = threading.Thread(target=agent.serve_forever, name="cni-agent-server", daemon=True)
    server.start()
    try:
        stop.wait()
    finally:
        agent.stop()
        server.join(timeout=5)
        runtime.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sriov-cni-agent", description="Resident agent serving the 'sriov' CNI shim."
    )
    parser.add_argument(
        "--socket",
        type=Path,
        default=Path(DEFAULT_SOCKET),
        help=f"unix socket to listen on (default {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"CNI state directory (default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--sysfs-root",
        type=Path,
        default=Path("/"),
        help="root holding sys/ (default /; an emulated host's root in dev)",
    )
    parser.add_argument(
        "--pool-config",
        type=Path,
        default=pool_config_from_env(os.environ.get(POOL_CONFIG_ENV)),
        metavar="FILE",
        help="device plugin pool config (resourceList JSON): ADD takes only VFs of its pools "
        f"(default ${POOL_CONFIG_ENV}; unset: any VF of the node)",
    )
    parser.add_argument(
        "--client-uid",
        type=int,
        default=None,
        metavar="UID",
        help="also accept requests from this uid (root and the agent's own uid always may)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-dirs",
        default=os.environ.get(LOG_DIRS_ENV),
        metavar="DIR[:DIR...]",
        help="directories where a netconf's logFile may be (default $SRIOV_CNI_LOG_DIRS, else "
        "/var/log:/tmp; empty: logFile is ignored)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes accepting on the socket (default: two per CPU, 2 to 8; "
        "1: serve in this process)",
    )
    parser.add_argument(
        "--sync-del",
        action="store_true",
        help="answer a VF-mode or fallback DEL only after the VF is back in the host and "
        "restored or the link is deleted (default: answer once IPAM is released and the DEL "
        "is committed; the rest follows at once, under the attachment's and the VF's locks, "
        "docs/cni.md 'Deferred DEL')",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="log per-step timings of every request (same as SRIOV_CNI_TRACE=1)",
    )
    args = parser.parse_args(argv)
    if args.trace:
        trace.switch_on()
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    agent = CniAgent(args.socket, _no_handlers, log_dirs_from(args.log_dirs),
                     client_uid=args.client_uid)
    # a stop signal that comes once the socket exists but before its handler is in place
    # waits (blocked) instead of killing the agent with the socket left behind; the caller's
    # mask comes back on every way out (an embedding process or a test must not keep it)
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return _bind_and_serve(agent, args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _bind_and_serve(agent: CniAgent, args: argparse.Namespace) -> int:
    try:
        agent.bind()  # once, before any fork: every worker accepts on this socket
    except (OSError, RuntimeError) as e:
        log.error("cannot listen on %s: %s", args.socket, e)
        return 1

    def serve() -> int:
        runtime = warm_runtime(args.sysfs_root, args.state_dir, args.pool_config,
                               deferred_del=not args.sync_del)
        agent.handlers_factory = runtime.plugin
        agent.request_scope = runtime.after_reply

        def stop(signum: int, frame: object) -> None:
            log.info("signal %s: stopping", signum)
            threading.Thread(target=agent.stop, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        try:
            agent.serve_forever()
        finally:
            runtime.close()
        return 0

    if args.workers == 1:
        try:
            return serve()
        finally:
            agent.close()  # also when the runtime could not start
    agent.owns_socket = False  # a worker that stops must not remove the socket or its claim
    # every worker wakes up for a new connection and only one gets it: the others must not
    # block in accept() (they would miss a stop until the next connection)
    agent.listening_socket().setblocking(False)
    try:
        return WorkerPool(args.workers, serve).run()
    finally:
        agent.owns_socket = True
        agent.close()


def _no_handlers(env: Mapping[str, str], stderr: TextIO) -> skel.Handlers:
    raise RuntimeError("the agent serves only after its runtime is warm")


if __name__ == "__main__":
    raise SystemExit(main())
