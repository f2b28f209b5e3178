"""IPAM delegation: the :class:`IpamRunner` seam and the exec-based runner.

:class:`ExecIpam` runs the delegate named by ``ipam.type`` from ``CNI_PATH`` with the same
environment (only ``CNI_COMMAND`` overridden) and the same full stdin config (CNI spec §4,
libcni ``pkg/invoke``). Argv lists only, never a shell. :func:`make_ipam` picks the in-process
host-local allocator (:mod:`cni.host_local`) when it can, to avoid a fork+exec per pod.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from cni.errors import CniCode, CniError
from cni.ipam_child import ChildTimeout, run_child
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Command, Result

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 30.0


class IpamRunner(Protocol):
    def add(self, conf: NetConf, args: CmdArgs) -> Result: ...
    def delete(self, conf: NetConf, args: CmdArgs) -> None: ...
    def check(self, conf: NetConf, args: CmdArgs) -> None: ...
    def gc(self, conf: NetConf, args: CmdArgs) -> None: ...
    def status(self, conf: NetConf, args: CmdArgs) -> None: ...


class NoIpam:
    """Used when the netconf has no ``ipam`` section (pure L2 attachment)."""

    def add(self, conf: NetConf, args: CmdArgs) -> Result:
        return Result(cni_version=conf.cni_version)

    def delete(self, conf: NetConf, args: CmdArgs) -> None:
        return None

    def check(self, conf: NetConf, args: CmdArgs) -> None:
        return None

    def gc(self, conf: NetConf, args: CmdArgs) -> None:
        return None

    def status(self, conf: NetConf, args: CmdArgs) -> None:
        return None


def find_plugin(name: str, cni_path: Sequence[str]) -> Path:
    """Locate an executable ``name`` in the ``CNI_PATH`` directories (libcni ``FindInPath``)."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise CniError(
            CniCode.INVALID_CONFIG,
            f"invalid ipam.type {name!r}",
            "must be a plugin file name without path separators",
        )
    for directory in cni_path:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(
        CniCode.IPAM,
        f"failed to find IPAM plugin {name!r} in CNI_PATH",
        "searched: " + ":".join(cni_path),
    )


class ExecIpam:
    def __init__(
        self,
        cni_path: Sequence[str],
        env: Mapping[str, str],
        *,
        stderr: TextIO | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.cni_path = tuple(cni_path)
        self.env = dict(env)
        self.stderr = stderr
        self.timeout = timeout

    def _exec(self, command: Command, conf: NetConf, args: CmdArgs | None = None) -> bytes:
        plugin = find_plugin(conf.ipam_type, self.cni_path)
        env = {**self.env, "CNI_COMMAND": str(command)}
        if args is not None and args.container_id:
            # the attachment this call is about: GC releases stale attachments whose IDs are
            # not in GC's own (empty) CNI_CONTAINERID/CNI_IFNAME
            env.update(CNI_CONTAINERID=args.container_id, CNI_IFNAME=args.ifname,
                       CNI_NETNS=args.netns)
        log.debug("exec IPAM %s %s", plugin, command)
        try:
            returncode, stdout, stderr = run_child([str(plugin)], conf.raw, env, self.timeout)
        except ChildTimeout as e:
            raise CniError(
                CniCode.TRY_AGAIN_LATER,
                f"IPAM plugin {conf.ipam_type} {command} timed out",
                str(e),
            ) from None
        except (OSError, subprocess.SubprocessError) as e:
            raise CniError(
                CniCode.IPAM, f"cannot run IPAM plugin {conf.ipam_type}", str(e)
            ) from None
        if stderr and self.stderr is not None:
            self.stderr.write(stderr.decode(errors="replace"))
        if returncode != 0:
            raise self._delegate_error(conf.ipam_type, command, stdout, stderr)
        return stdout

    @staticmethod
    def _delegate_error(name: str, command: Command, stdout: bytes, stderr: bytes) -> CniError:
        try:
            obj = json.loads(stdout)
            code = int(obj["code"])
            return CniError(
                code, f"IPAM {name} {command}: {obj.get('msg', '')}", str(obj.get("details") or "")
            )
        except (ValueError, KeyError, TypeError):
            text = (stdout or stderr).decode(errors="replace").strip()[:500]
            return CniError(CniCode.IPAM, f"IPAM plugin {name} {command} failed", text)

    def add(self, conf: NetConf, args: CmdArgs) -> Result:
        out = self._exec(Command.ADD, conf, args)
        try:
            obj = json.loads(out)
        except ValueError as e:
            raise CniError(
                CniCode.IPAM, f"IPAM plugin {conf.ipam_type} printed invalid JSON", str(e)
            ) from None
        if isinstance(obj, dict) and not obj.get("cniVersion"):
            obj["cniVersion"] = conf.cni_version  # libcni fixupResultVersion
        return Result.from_json(obj)

    def delete(self, conf: NetConf, args: CmdArgs) -> None:
        self._exec(Command.DEL, conf, args)

    def check(self, conf: NetConf, args: CmdArgs) -> None:
        self._exec(Command.CHECK, conf, args)

    def gc(self, conf: NetConf, args: CmdArgs) -> None:
        if self._tolerate_old(Command.GC, conf) or conf.ipam_type != "host-local":
            return
        # A host-local older than CNI 1.1 cannot GC; its store is ours too (cni.host_local):
        # release what no valid attachment holds, e.g. a lease an orphaned delegate took
        # after the runtime's DEL (issue 11 #9)
        from cni.host_local import HostLocal

        HostLocal().gc(conf, args)

    def status(self, conf: NetConf, args: CmdArgs) -> None:
        self._tolerate_old(Command.STATUS, conf)

    def _tolerate_old(self, command: Command, conf: NetConf) -> bool:
        """Run ``command``; False when the delegate is too old for it (not a failure).

        A delegate older than CNI 1.1.0 (e.g. Debian's host-local 1.1.1) answers code 1
        (config version too new) or code 4 "unknown CNI_COMMAND: GC"."""
        try:
            self._exec(command, conf)
        except CniError as e:
            too_old = e.code == CniCode.INCOMPATIBLE_VERSION or (
                e.code == CniCode.INVALID_ENV and "unknown CNI_COMMAND" in e.msg
            )
            if not too_old:
                raise
            log.info("IPAM %s does not support %s (%s); skipping", conf.ipam_type, command, e.msg)
            return False
        return True


def make_ipam(
    conf: NetConf,
    cni_path: Sequence[str],
    env: Mapping[str, str],
    *,
    stderr: TextIO | None = None,
    prefer_in_process: bool = True,
) -> IpamRunner:
    """The runner for ``conf``: none, in-process host-local, or exec of the delegate."""
    if not conf.ipam_type:
        return NoIpam()
    if conf.ipam_type == "host-local" and prefer_in_process:
        from cni.host_local import HostLocal

        return HostLocal()
    return ExecIpam(cni_path, env, stderr=stderr)
