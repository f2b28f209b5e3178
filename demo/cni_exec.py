"""Run a CNI network configuration list the way a container runtime (libcni) does.

ADD runs each plugin in order, handing the previous result on as ``prevResult``; DEL runs them
in reverse with the cached ADD result; GC hands ``cni.dev/valid-attachments`` to each plugin.
Plugins are executables found in ``plugin_dirs`` and run with an argv list (never a shell).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PLUGIN_TIMEOUT = 60.0


class CniExecError(Exception):
    """A plugin returned an error (its code and message are in the text)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    container_id: str
    netns: str
    ifname: str
    cni_args: str = ""
    """``CNI_ARGS``, e.g. ``K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod``."""


def plugin_config(conflist: Mapping[str, Any], plugin: Mapping[str, Any],
                  prev_result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stdin of one plugin of a list (pure): list name/version injected, prevResult added."""
    conf = {**plugin, "cniVersion": conflist["cniVersion"], "name": conflist["name"]}
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


def find_plugin(plugin_dirs: Sequence[Path], name: str) -> Path:
    if "/" in name or not name:
        raise CniExecError(f"invalid plugin type {name!r}")
    for directory in plugin_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise CniExecError(f"CNI plugin {name!r} not found in {', '.join(map(str, plugin_dirs))}")


class CniRunner:
    def __init__(self, plugin_dirs: Sequence[Path], env: Mapping[str, str] | None = None) -> None:
        self.plugin_dirs = tuple(plugin_dirs)
        self.env = dict(os.environ if env is None else env)

    def invoke(self, command: str, conf: Mapping[str, Any], att: Attachment) -> dict[str, Any]:
        binary = find_plugin(self.plugin_dirs, str(conf.get("type", "")))
        env = {**self.env, "CNI_COMMAND": command, "CNI_CONTAINERID": att.container_id,
               "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname, "CNI_ARGS": att.cni_args,
               "CNI_PATH": os.pathsep.join(map(str, self.plugin_dirs))}
        proc = subprocess.run([str(binary)], input=json.dumps(conf).encode(), env=env,
                              capture_output=True, timeout=PLUGIN_TIMEOUT, check=False)
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            detail = out or proc.stderr.decode(errors="replace").strip()
            raise CniExecError(f"{conf.get('type')} {command} failed: {detail}")
        if not out:
            return {}
        try:
            return dict(json.loads(out))
        except ValueError as e:
            raise CniExecError(f"{conf.get('type')} {command}: bad JSON on stdout: {e}") from e

    def add(self, conflist: Mapping[str, Any], att: Attachment) -> dict[str, Any]:
        """ADD the whole list; on a failure, DEL what was added (as libcni does) and raise."""
        result: dict[str, Any] | None = None
        for done, plugin in enumerate(conflist["plugins"]):
            try:
                result = self.invoke("ADD", plugin_config(conflist, plugin, result), att)
            except CniExecError:
                self.delete({**conflist, "plugins": conflist["plugins"][:done + 1]}, att, result)
                raise
        return result or {}

    def delete(self, conflist: Mapping[str, Any], att: Attachment,
               prev_result: Mapping[str, Any] | None) -> list[str]:
        """DEL in reverse order; keeps going past errors and returns them."""
        errors = []
        for plugin in reversed(conflist["plugins"]):
            try:
                self.invoke("DEL", plugin_config(conflist, plugin, prev_result), att)
            except (CniExecError, OSError, subprocess.TimeoutExpired) as e:
                log.warning("DEL %s: %s", plugin.get("type"), e)
                errors.append(str(e))
        return errors

    def gc(self, conflist: Mapping[str, Any], valid: Sequence[Attachment]) -> None:
        attachments = [{"containerID": a.container_id, "ifname": a.ifname} for a in valid]
        for plugin in conflist["plugins"]:
            conf = {**plugin_config(conflist, plugin, None),
                    "cni.dev/valid-attachments": attachments}
            self.invoke("GC", conf, Attachment(container_id="", netns="", ifname=""))
