"""The CNI invocation skeleton: env + stdin in, exactly one JSON document out.

:func:`dispatch` is the only place that writes to stdout. Success of ADD prints the result
converted to the request's cniVersion; VERSION prints the version answer; CHECK/DEL/GC/STATUS
success print nothing. Any failure prints one error object ``{cniVersion, code, msg, details}``
(on stdout: libcni parses stdout, despite the spec prose) and returns exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, TextIO

from cni import trace
from cni.errors import CniCode, CniError, from_exception
from cni.logging_setup import request_logging
from cni.netconf import NetConf
from cni.protocol import (
    CURRENT_VERSION,
    CmdArgs,
    Command,
    Result,
    require_version_for,
    version_answer,
)

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 55.0
OWN_NETNS = "/proc/self/ns/net"


class Handlers(Protocol):
    def add(self, args: CmdArgs, conf: NetConf) -> Result: ...
    def delete(self, args: CmdArgs, conf: NetConf) -> None: ...
    def check(self, args: CmdArgs, conf: NetConf) -> None: ...
    def gc(self, args: CmdArgs, conf: NetConf) -> None: ...
    def status(self, args: CmdArgs, conf: NetConf) -> None: ...


def request_version(stdin: bytes) -> str:
    """Best-effort cniVersion of the request for error output (never raises)."""
    try:
        obj = json.loads(stdin)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return CURRENT_VERSION
    version = obj.get("cniVersion") if isinstance(obj, dict) else None
    return version if isinstance(version, str) and version else CURRENT_VERSION


def write_json(stdout: TextIO, obj: Mapping[str, Any]) -> None:
    stdout.write(json.dumps(obj))
    stdout.write("\n")
    stdout.flush()


def write_error(stdout: TextIO, err: CniError, version: str) -> int:
    write_json(stdout, err.to_dict(version))
    return 1


def _same_netns(path: str, own: str) -> bool:
    try:
        a, b = os.stat(path), os.stat(own)
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


@contextlib.contextmanager
def alarm(timeout: float | None) -> Iterator[None]:
    """Whole-invocation timeout via SIGALRM (main thread only; no-op elsewhere)."""
    import threading

    if not timeout or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise CniError(
            CniCode.TRY_AGAIN_LATER,
            "plugin timed out; try again",
            f"whole invocation exceeded {timeout:g}s",
        )

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def dispatch(
    env: Mapping[str, str],
    stdin: bytes,
    stdout: TextIO,
    stderr: TextIO,
    handlers: Handlers,
    *,
    timeout: float | None = None,
    own_netns: str = OWN_NETNS,
) -> int:
    """Run one CNI invocation; returns the process exit status (0 or 1)."""
    version = request_version(stdin)
    with request_logging(
        stderr, env.get("CNI_CONTAINERID", ""), env.get("CNI_NETNS", ""), env.get("CNI_IFNAME", "")
    ) as logs:
        try:
            with alarm(timeout), trace.request(env.get("CNI_COMMAND", "?"), trace.enabled()):
                return _run(env, stdin, stdout, handlers, logs, own_netns)
        except Exception as exc:
            err = from_exception(exc)
            if err.code == CniCode.INTERNAL:
                log.error("%s failed: %s", env.get("CNI_COMMAND", "?"), err, exc_info=exc)
            else:
                log.error("%s failed: %s", env.get("CNI_COMMAND", "?"), err)
            return write_error(stdout, err, version)


def _run(
    env: Mapping[str, str],
    stdin: bytes,
    stdout: TextIO,
    handlers: Handlers,
    logs: Any,
    own_netns: str,
) -> int:
    with trace.step("parse"):
        args = CmdArgs.from_env(env)
        if args.command is Command.VERSION:
            write_json(stdout, version_answer(request_version(stdin) if stdin.strip() else None))
            return 0
        conf = NetConf.parse(stdin, args)
    logs.configure(conf.log_level, conf.log_file)
    log.debug("%s netconf: %s", args.command, stdin)
    require_version_for(args.command, conf.cni_version)
    override = env.get("CNI_NETNS_OVERRIDE", "").lower() in ("1", "true")
    if (
        args.command in (Command.ADD, Command.CHECK, Command.DEL)
        and not override
        and _same_netns(args.netns, own_netns)
    ):
        raise CniError(
            CniCode.INVALID_NETNS,
            "CNI_NETNS is the plugin's own network namespace",
            f"refusing to {args.command} in {args.netns}; set CNI_NETNS_OVERRIDE=1 to allow",
        )
    log.info("%s start (network %s, cniVersion %s)", args.command, conf.name, conf.cni_version)
    if args.command is Command.ADD:
        result = handlers.add(args, conf)
        with trace.step("result"):
            write_json(stdout, result.to_dict(conf.cni_version))
    elif args.command is Command.DEL:
        handlers.delete(args, conf)
    elif args.command is Command.CHECK:
        handlers.check(args, conf)
    elif args.command is Command.GC:
        handlers.gc(args, conf)
    else:
        handlers.status(args, conf)
    log.info("%s done", args.command)
    return 0
