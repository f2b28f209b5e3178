"""In-process host-local: allocation order, on-disk format, requested IPs, release, GC."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError
from cni.host_local import HostLocal
from cni.netconf import NetConf
from cni.protocol import CmdArgs


def make(
    tmp_path: Path,
    ipam: dict[str, Any],
    cid: str = "c1",
    ifname: str = "net1",
    cni_args: str = "",
    version: str = "1.0.0",
    **top: Any,
) -> tuple[NetConf, CmdArgs]:
    args = CmdArgs.from_env(
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/x",
            "CNI_IFNAME": ifname,
            "CNI_PATH": "/usr/lib/cni",
            "CNI_ARGS": cni_args,
        }
    )
    body = {
        "cniVersion": version,
        "name": "st-net",
        "type": "sriov",
        "ipam": {"type": "host-local", "dataDir": str(tmp_path), **ipam},
        **top,
    }
    return NetConf.parse(json.dumps(body).encode(), args), args


def add(tmp_path: Path, ipam: dict[str, Any], **kw: Any) -> list[str]:
    conf, args = make(tmp_path, ipam, **kw)
    return [ip.address for ip in HostLocal().add(conf, args).ips]


SMALL = {"ranges": [[{"subnet": "10.9.0.0/29"}]]}


def test_allocates_in_order_skipping_gateway_with_reference_files(tmp_path: Path) -> None:
    got = [add(tmp_path, SMALL, cid=f"c{i}")[0] for i in range(5)]
    assert got == ["10.9.0.2/29", "10.9.0.3/29", "10.9.0.4/29", "10.9.0.5/29", "10.9.0.6/29"]
    net = tmp_path / "st-net"
    assert (net / "10.9.0.2").read_bytes() == b"c0\r\nnet1"
    assert stat.S_IMODE((net / "10.9.0.2").stat().st_mode) == 0o600
    assert (net / "last_reserved_ip.0").read_text() == "10.9.0.6"
    assert (net / "lock").exists()
    with pytest.raises(CniError, match="no IP addresses available"):
        add(tmp_path, SMALL, cid="c9")


def test_round_robin_continues_after_last_reserved(tmp_path: Path) -> None:
    add(tmp_path, SMALL, cid="a")  # .2
    add(tmp_path, SMALL, cid="b")  # .3
    conf, args = make(tmp_path, SMALL, cid="a")
    HostLocal().delete(conf, args)
    assert add(tmp_path, SMALL, cid="c") == ["10.9.0.4/29"]  # not the freed .2


def test_duplicate_allocation_refused_and_release_is_by_id_and_ifname(tmp_path: Path) -> None:
    add(tmp_path, SMALL)
    with pytest.raises(CniError, match="duplicate allocation"):
        add(tmp_path, SMALL)
    assert add(tmp_path, SMALL, ifname="net2") == ["10.9.0.3/29"]
    conf, args = make(tmp_path, SMALL)
    hl = HostLocal()
    hl.check(conf, args)
    hl.delete(conf, args)
    hl.delete(conf, args)  # second DEL is fine
    with pytest.raises(CniError):
        hl.check(conf, args)
    assert sorted(p.name for p in (tmp_path / "st-net").iterdir()) == [
        "10.9.0.3",
        "last_reserved_ip.0",
        "lock",
    ]


def test_requested_ips_from_cni_args_args_and_runtime_config(tmp_path: Path) -> None:
    dual = {"ranges": [[{"subnet": "10.9.0.0/24"}], [{"subnet": "fd00::/64"}]]}
    assert add(tmp_path, dual, cni_args="IgnoreUnknown=1;IP=10.9.0.77") == [
        "10.9.0.77/24",
        "fd00::2/64",
    ]
    assert add(tmp_path, dual, cid="c2", runtimeConfig={"ips": ["10.9.0.88/24", "fd00::88"]}) == [
        "10.9.0.88/24",
        "fd00::88/64",
    ]
    assert add(tmp_path, dual, cid="c3", args={"cni": {"ips": ["10.9.0.99"]}})[0] == "10.9.0.99/24"
    with pytest.raises(CniError, match="not available"):
        add(tmp_path, dual, cid="c4", cni_args="IgnoreUnknown=1;IP=10.9.0.77")
    with pytest.raises(CniError, match="gateway"):
        add(tmp_path, dual, cid="c5", cni_args="IgnoreUnknown=1;IP=10.9.0.1")
    with pytest.raises(CniError, match="requested"):
        add(tmp_path, dual, cid="c6", cni_args="IgnoreUnknown=1;IP=192.168.1.1")
    assert not any(p.read_bytes().startswith(b"c6") for p in (tmp_path / "st-net").iterdir())


def test_legacy_keys_routes_gateway_and_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# c\nnameserver 10.0.0.53\nsearch a.svc b.svc\noptions ndots:5\ndomain example\n"
    )
    conf, args = make(
        tmp_path,
        {
            "subnet": "10.20.0.0/24",
            "rangeStart": "10.20.0.50",
            "rangeEnd": "10.20.0.60",
            "gateway": "10.20.0.254",
            "routes": [{"dst": "0.0.0.0/0"}],
            "resolvConf": str(resolv),
        },
    )
    out = HostLocal().add(conf, args).to_dict("1.0.0")
    assert out["ips"] == [{"address": "10.20.0.50/24", "gateway": "10.20.0.254"}]
    assert out["routes"] == [{"dst": "0.0.0.0/0"}]
    assert out["dns"] == {
        "nameservers": ["10.0.0.53"],
        "domain": "example",
        "search": ["a.svc", "b.svc"],
        "options": ["ndots:5"],
    }


@pytest.mark.parametrize(
    ("ipam", "key"),
    [
        ({}, "ipam.ranges"),
        ({"ranges": [[{"subnet": "10.0.0.1/24"}]]}, "subnet"),
        ({"ranges": [[{"subnet": "10.0.0.0/31"}]]}, "subnet"),
        ({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.1.0.5"}]]}, "rangeStart"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}, "overlaps"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}, "mixes"),
    ],
)
def test_invalid_ranges_are_config_errors(tmp_path: Path, ipam: dict[str, Any], key: str) -> None:
    with pytest.raises(CniError) as ei:
        add(tmp_path, ipam)
    assert ei.value.code == 7 and key in ei.value.msg


def test_gc_releases_only_invalid_attachments(tmp_path: Path) -> None:
    for cid in ("keep", "drop"):
        add(tmp_path, SMALL, cid=cid)
    conf, args = make(
        tmp_path,
        SMALL,
        version="1.1.0",
        **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "net1"}]},
    )
    HostLocal().gc(conf, args)
    held = {p.read_bytes() for p in (tmp_path / "st-net").iterdir() if p.name.startswith("10.")}
    assert held == {b"keep\r\nnet1"}


def _allocate_many(data_dir: str, prefix: str, count: int) -> list[str]:
    """One process's share of a burst: ``count`` ADDs from 8 threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    ipam = {"ranges": [[{"subnet": "10.9.0.0/24"}]]}
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda i: add(Path(data_dir), ipam, cid=f"{prefix}{i}")[0],
                             range(count)))


def test_a_burst_from_threads_and_processes_gets_distinct_ips_and_a_whole_hint(
    tmp_path: Path,
) -> None:
    """ADD takes no network-wide lock (the O_EXCL lease file is what makes an IP unique): 3
    processes x 8 threads allocating 120 IPs at once get 120 distinct ones, every lease file
    names its attachment, and the last-reserved hint is one whole address, never a mix of two
    writers'. A release takes only the leases still naming the attachment."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as procs:
        shares = procs.starmap(_allocate_many, [(str(tmp_path), f"p{k}-", 40) for k in range(3)])
    got = [ip for share in shares for ip in share]
    assert len(got) == 120 and len(set(got)) == 120
    net = tmp_path / "st-net"
    leases = {p.name: p.read_bytes() for p in net.iterdir() if p.name.startswith("10.")}
    assert sorted(leases) == sorted(ip.split("/")[0] for ip in got)
    assert all(content.split(b"\r\n")[1] == b"net1" for content in leases.values())
    hint = (net / "last_reserved_ip.0").read_text()
    assert hint in leases  # a whole address one of the writers reserved
    conf, args = make(tmp_path, {"ranges": [[{"subnet": "10.9.0.0/24"}]]}, cid="p0-0")
    mine = next(ip.split("/")[0] for ip in got if leases[ip.split("/")[0]] == b"p0-0\r\nnet1")
    (net / mine).write_bytes(b"someone-else\r\nnet1")  # released and re-taken meanwhile
    HostLocal().delete(conf, args)
    assert (net / mine).read_bytes() == b"someone-else\r\nnet1"
