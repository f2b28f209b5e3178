"""The demo's pure parts: conflists, CNI list config, report lines, leak diff, parsing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from demo import conflists
from demo.cni_exec import plugin_config
from demo.podman import busybox_rootfs_tar, containers_conf
from demo.pods import parse_ip_output
from demo.report import Report, StepFailed
from demo.snapshot import HostPicture, VfPicture, differences, lease_files
from demo.stack import DEFAULT_CONFIG_DIR, env_launcher


def test_shipped_demo_conflist_gets_the_device_id_the_multus_way(tmp_path: Path) -> None:
    template = conflists.load(DEFAULT_CONFIG_DIR / "sriov-net.conflist")
    net = conflists.with_device_id(conflists.with_ipam_dir(template, tmp_path), "0000:3b:02.0")
    plugin = net["plugins"][0]
    assert plugin["deviceID"] == plugin["pciBusID"] == "0000:3b:02.0"
    assert plugin["ipam"]["dataDir"] == str(tmp_path)
    assert "deviceID" not in template["plugins"][0]  # the template is not modified


def test_pod_resources_variant_has_no_device_id(tmp_path: Path) -> None:
    template = conflists.load(DEFAULT_CONFIG_DIR / "sriov-net.conflist")
    net = conflists.with_pod_resources(template, tmp_path / "kubelet.sock")
    assert "deviceID" not in net["plugins"][0]
    assert net["plugins"][0]["podResourcesSocket"] == str(tmp_path / "kubelet.sock")


def test_tuning_is_chained_after_our_plugin(tmp_path: Path) -> None:
    net = conflists.with_tuning(conflists.sriov_vf("n", "0000:3b:02.0",
                                                   conflists.host_local("10.0.0.0/24", tmp_path)),
                                mtu=1400)
    assert [p["type"] for p in net["plugins"]] == ["sriov", "tuning"]
    assert net["plugins"][0]["deviceID"] == "0000:3b:02.0"
    assert net["plugins"][1] == {"type": "tuning", "mtu": 1400}


def test_plugin_config_injects_list_name_version_and_prev_result() -> None:
    conf = plugin_config({"cniVersion": "1.0.0", "name": "net", "plugins": []},
                         {"type": "tuning", "mtu": 1400}, {"cniVersion": "1.0.0", "ips": []})
    assert conf == {"type": "tuning", "mtu": 1400, "cniVersion": "1.0.0", "name": "net",
                    "prevResult": {"cniVersion": "1.0.0", "ips": []}}


def test_report_numbers_steps_and_records_failures() -> None:
    ticks = iter([0.0, 1.0, 1.5, 2.0, 2.25])
    out = io.StringIO()
    report = Report(out, clock=lambda: next(ticks))
    with report.step("first"):
        pass
    with pytest.raises(StepFailed), report.step("second"):
        raise StepFailed("vlan 5000 refused")
    text = out.getvalue()
    assert "✓  [1] first (0.50s)" in text
    assert "✗  [2] second failed after 0.25s: vlan 5000 refused" in text
    assert report.failed == ["[2] second: vlan 5000 refused"]


def _picture(**kw: object) -> HostPicture:
    vf = VfPicture(address="0000:3b:02.0", netdev="p0v0", mac="02:00:00:00:00:01", mtu=1500,
                   pf_side=None)
    base: dict[str, object] = {"vfs": (vf,), "netns": frozenset(), "state_files": (), "leases": ()}
    return HostPicture(**{**base, **kw})  # type: ignore[arg-type]


def test_differences_name_each_leak() -> None:
    renamed = VfPicture(address="0000:3b:02.0", netdev="dev0", mac="02:00:00:00:00:01",
                        mtu=1500, pf_side=None)
    after = _picture(vfs=(renamed,), state_files=("abc-eth0",), leases=("net/10.0.0.5",))
    assert differences(_picture(), after) == [
        "VF 0000:3b:02.0 netdev: p0v0 -> dev0",
        "CNI state file abc-eth0 left behind",
        "IPAM lease net/10.0.0.5 left behind",
    ]
    assert differences(_picture(), _picture()) == []


def test_lease_files_are_ip_named_only(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    for name in ("10.0.0.5", "lock", "last_reserved_ip.0"):
        (tmp_path / "net" / name).write_text("x")
    assert lease_files(tmp_path) == ("net/10.0.0.5",)


def test_parse_busybox_ip_output() -> None:
    link = ("2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue qlen 1000\\"
            "    link/ether 02:5e:01:00:00:00 brd ff:ff:ff:ff:ff:ff\n")
    addr = "2: eth0    inet 10.56.217.10/24 brd 10.56.217.255 scope global eth0\n"
    assert parse_ip_output(link, addr) == ("02:5e:01:00:00:00", 1400, "10.56.217.10", 24)
    with pytest.raises(StepFailed, match="cannot read the pod interface"):
        parse_ip_output("", addr)


def test_containers_conf_points_podman_at_our_dirs(tmp_path: Path) -> None:
    text = containers_conf([tmp_path / "bin", Path("/usr/lib/cni")], tmp_path / "nets")
    assert 'network_backend = "cni"' in text
    assert f'cni_plugin_dirs = ["{tmp_path}/bin", "/usr/lib/cni"]' in text
    assert f'network_config_dir = "{tmp_path}/nets"' in text


def test_busybox_rootfs_has_applet_links(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF")
    with tarfile.open(fileobj=io.BytesIO(busybox_rootfs_tar(fake))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/ping"].issym() and members["bin/ping"].linkname == "busybox"


def test_env_launcher_quotes_paths_as_literals(tmp_path: Path) -> None:
    target = tmp_path / "it's here" / "sriov"
    text = env_launcher(target, {"SRIOV_SYSFS_ROOT": "/x'y"})
    body = text.split("\n", 1)[1]
    compile(body, "launcher", "exec")  # valid Python whatever the path holds
    assert repr(str(target)) in body and json.dumps("/x'y") in body
