"""The CNI invocation skeleton: env + stdin in, exactly one JSON document out.

:func:`dispatch` is the only place that writes to stdout. Success of ADD prints the result
converted to the request's cniVersion; VERSION prints the version answer; CHECK/DEL/GC/STATUS
success print nothing. Any failure prints one error object ``{cniVersion, code, msg, details}``
(on stdout: libcni parses stdout, despite the spec prose) and returns exit status 1.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from cni import trace
from cni.errors import CniCode, CniError, from_exception
from cni.log_file import DEFAULT_LOG_DIRS
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
from cni.redact import netconf_for_log

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


class _Alarm:
    """Whole-invocation timeout via SIGALRM (main thread only; inert elsewhere).

    ``disarm()`` runs before the first byte of output: a timeout that fires after the result
    started to be written must not add a second JSON document (the flag is set before the
    timer is stopped, so a signal already pending is ignored too)."""

    def __init__(self, timeout: float | None) -> None:
        import threading

        self.timeout = timeout
        self.armed = bool(timeout) and threading.current_thread() is threading.main_thread()
        self._previous: Any = None

    def _expired(self, signum: int, frame: object) -> None:
        if not self.armed:
            return
        raise CniError(
            CniCode.TRY_AGAIN_LATER,
            "plugin timed out; try again",
            f"whole invocation exceeded {self.timeout:g}s",
        )

    def __enter__(self) -> _Alarm:
        if self.armed:
            self._previous = signal.signal(signal.SIGALRM, self._expired)
            signal.setitimer(signal.ITIMER_REAL, self.timeout or 0)
        return self

    def disarm(self) -> None:
        if self.armed:
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            self.disarm()
            signal.signal(signal.SIGALRM, self._previous)
            self._previous = None



class _Output:
    """stdout for one invocation: the first write disarms the timeout and is remembered."""

    def __init__(self, stdout: TextIO, before_first_write: Any) -> None:
        self._stdout = stdout
        self._before = before_first_write
        self.started = False

    def write(self, text: str) -> int:
        if not self.started:
            self._before()
            self.started = True
        return self._stdout.write(text)

    def flush(self) -> None:
        self._stdout.flush()


def dispatch(
    env: Mapping[str, str],
    stdin: bytes,
    stdout: TextIO,
    stderr: TextIO,
    handlers: Handlers,
    *,
    timeout: float | None = None,
    own_netns: str = OWN_NETNS,
    log_dirs: Sequence[Path] = DEFAULT_LOG_DIRS,
) -> int:
    """Run one CNI invocation; returns the process exit status (0 or 1).

    ``log_dirs``: where a netconf's ``logFile`` may be (:mod:`cni.log_file`); the process's
    configuration, never the request's."""
    version = request_version(stdin)
    with request_logging(
        stderr, env.get("CNI_CONTAINERID", ""), env.get("CNI_NETNS", ""), env.get("CNI_IFNAME", "")
    ) as logs:
        timer = _Alarm(timeout)
        out = _Output(stdout, timer.disarm)
        try:
            with timer, trace.request(env.get("CNI_COMMAND", "?"), trace.enabled()):
                return _run(env, stdin, out, handlers, logs, own_netns,  # type: ignore[arg-type]
                            log_dirs)
        except Exception as exc:
            err = from_exception(exc)
            if out.started:  # the result is out (state saved before it): never a 2nd document
                log.error("%s failed after its result was written: %s",
                          env.get("CNI_COMMAND", "?"), err)
                return 0
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
    log_dirs: Sequence[Path],
) -> int:
    with trace.step("parse"):
        args = CmdArgs.from_env(env)
        if args.command is Command.VERSION:
            write_json(stdout, version_answer(request_version(stdin) if stdin.strip() else None))
            return 0
        conf = NetConf.parse(stdin, args)
    logs.configure(conf.log_level, conf.log_file, log_dirs)
    for warning in conf.warnings:
        log.warning("netconf: %s", warning)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s netconf: %s", args.command, netconf_for_log(stdin))
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
