"""ExecIpam gives the delegate the attachment it is about, not the caller's env: GC releases
stale attachments with its own empty CNI_CONTAINERID/CNI_IFNAME (review finding)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from cni.ipam import ExecIpam
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Command


def test_delegate_del_gets_the_stale_attachments_ids(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    plugin = tmp_path / "rec-ipam"
    plugin.write_text("#!/bin/sh\nenv > " + str(seen) + "\n")
    plugin.chmod(0o755)
    gc_env = {"CNI_COMMAND": "GC", "CNI_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    raw = json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "sriov",
                      "ipam": {"type": "rec-ipam"}}).encode()
    gc_args = CmdArgs(command=Command.GC, path=(str(tmp_path),))
    conf = NetConf.parse(raw, gc_args)
    stale = CmdArgs(command=Command.DEL, container_id="old-pod", ifname="net1",
                    netns="/var/run/netns/gone", path=(str(tmp_path),))
    ExecIpam([str(tmp_path)], gc_env, stderr=io.StringIO()).delete(conf, stale)
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert (env["CNI_COMMAND"], env["CNI_CONTAINERID"], env["CNI_IFNAME"]) == (
        "DEL",
        "old-pod",
        "net1",
    )
    assert env["CNI_NETNS"] == "/var/run/netns/gone"
