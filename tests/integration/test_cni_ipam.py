"""IPAM delegation with the real Debian reference plugins, and in-process host-local interop.

No root needed (data dirs live under tmp_path), but the reference binaries must be installed.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError
from cni.host_local import HostLocal
from cni.ipam import ExecIpam, make_ipam
from cni.netconf import NetConf
from cni.protocol import CmdArgs

REFERENCE_DIR = Path("/usr/lib/cni")


def require_plugin(name: str) -> None:
    if not (REFERENCE_DIR / name).is_file():
        pytest.skip(
            f"reference CNI plugin {name} not installed in {REFERENCE_DIR} "
            "(apt install containernetworking-plugins)"
        )


def setup(
    tmp_path: Path,
    ipam: dict[str, Any],
    cmd: str = "ADD",
    cid: str = "c1",
    ifname: str = "net1",
    version: str = "1.0.0",
    cni_args: str = "",
) -> tuple[NetConf, CmdArgs, dict[str, str]]:
    env = {
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/st-none",
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(REFERENCE_DIR),
        "CNI_ARGS": cni_args,
    }
    args = CmdArgs.from_env(env)
    body = {"cniVersion": version, "name": "st-net", "type": "sriov", "ipam": ipam}
    return NetConf.parse(json.dumps(body).encode(), args), args, env


def host_local_ipam(tmp_path: Path, subnet: str = "10.44.0.0/28") -> dict[str, Any]:
    return {
        "type": "host-local",
        "dataDir": str(tmp_path / "ipam"),
        "ranges": [[{"subnet": subnet}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }


def exec_runner(env: dict[str, str], stderr: io.StringIO | None = None) -> ExecIpam:
    return ExecIpam([str(REFERENCE_DIR)], env, stderr=stderr)


def test_exec_host_local_lifecycle(tmp_path: Path) -> None:
    require_plugin("host-local")
    conf, args, env = setup(tmp_path, host_local_ipam(tmp_path))
    runner = exec_runner(env)
    result = runner.add(conf, args)
    assert [ip.address for ip in result.ips] == ["10.44.0.2/28"] and result.ips[
        0
    ].gateway == "10.44.0.1"
    assert [r.dst for r in result.routes] == ["0.0.0.0/0"]
    runner.check(conf, args)
    with pytest.raises(CniError) as ei:  # duplicate ADD: the delegate's error, re-raised
        runner.add(conf, args)
    assert "duplicate" in ei.value.msg
    runner.delete(conf, args)
    runner.delete(conf, args)
    assert not (tmp_path / "ipam/st-net/10.44.0.2").exists()


def test_exec_static_and_requested_ip(tmp_path: Path) -> None:
    require_plugin("static")
    ipam = {
        "type": "static",
        "addresses": [{"address": "192.168.50.5/24", "gateway": "192.168.50.1"}],
        "routes": [{"dst": "10.0.0.0/8"}],
        "dns": {"nameservers": ["192.168.50.53"]},
    }
    conf, args, env = setup(tmp_path, ipam, version="0.4.0")
    result = exec_runner(env).add(conf, args)
    assert result.to_dict("0.4.0")["ips"] == [
        {"version": "4", "address": "192.168.50.5/24", "gateway": "192.168.50.1"}
    ]
    assert result.dns.nameservers == ("192.168.50.53",)
    exec_runner(env).delete(conf, args)


def test_exec_errors_missing_binary_and_bad_config(tmp_path: Path) -> None:
    require_plugin("static")
    conf, args, env = setup(tmp_path, {"type": "st-no-such-ipam"})
    with pytest.raises(CniError, match="failed to find IPAM plugin"):
        exec_runner(env).add(conf, args)
    conf, args, env = setup(tmp_path, {"type": "static", "addresses": [{"address": "not-an-ip"}]})
    stderr = io.StringIO()
    with pytest.raises(CniError) as ei:
        exec_runner(env, stderr).add(conf, args)
    assert ei.value.msg.startswith("IPAM static ADD")


def test_gc_and_status_forwarded_to_old_delegate_are_tolerated(tmp_path: Path) -> None:
    require_plugin("host-local")
    conf, args, env = setup(tmp_path, host_local_ipam(tmp_path), cmd="GC", version="1.1.0")
    exec_runner(env).gc(conf, args)  # Debian host-local 1.1.1 predates CNI 1.1.0: code 1, tolerated
    exec_runner(env).status(conf, args)


def test_ours_and_reference_share_one_store(tmp_path: Path) -> None:
    require_plugin("host-local")
    ours = HostLocal()
    conf_a, args_a, env_a = setup(tmp_path, host_local_ipam(tmp_path), cid="ours")
    conf_b, args_b, env_b = setup(tmp_path, host_local_ipam(tmp_path), cid="theirs")
    a = ours.add(conf_a, args_a).ips[0].address
    b = exec_runner(env_b).add(conf_b, args_b).ips[0].address
    assert (a, b) == (
        "10.44.0.2/28",
        "10.44.0.3/28",
    )  # reference continued after our last_reserved_ip
    # release crosswise: reference releases ours, ours releases the reference's
    exec_runner({**env_a, "CNI_COMMAND": "DEL"}).delete(conf_a, args_a)
    ours.delete(conf_b, args_b)
    assert sorted(p.name for p in (tmp_path / "ipam/st-net").iterdir()) == [
        "last_reserved_ip.0",
        "lock",
    ]


def test_interleaved_allocation_never_duplicates(tmp_path: Path) -> None:
    require_plugin("host-local")
    ipam = host_local_ipam(tmp_path, "10.45.0.0/26")
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        conf, args, env = setup(tmp_path, ipam, cid=f"st{i}")
        runner = HostLocal() if i % 2 else exec_runner(env)
        try:
            ip = runner.add(conf, args).ips[0].address
        except BaseException as e:
            errors.append(e)
            return
        with lock:
            results.append(ip)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 20 and len(set(results)) == 20


def test_make_ipam_prefers_in_process_host_local(tmp_path: Path) -> None:
    conf, args, env = setup(tmp_path, host_local_ipam(tmp_path))
    assert isinstance(make_ipam(conf, args.path, env), HostLocal)
    assert isinstance(make_ipam(conf, args.path, env, prefer_in_process=False), ExecIpam)
