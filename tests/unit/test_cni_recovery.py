"""Pure decisions of DEL/ADD recovery: which netns DEL trusts, when an ADD is late."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni.errors import CniError
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Command
from cni.record import AttachmentMode, AttachmentRecord, NetnsId
from cni.recovery import refuse_late_add, trusted_netns
from cni.state import StateStore, boottime_ns

OWN = "/proc/self/ns/net"


def _record(netns: str, netns_id: NetnsId | None) -> AttachmentRecord:
    return AttachmentRecord(mode=AttachmentMode.FALLBACK, container_id="c1", ifname="net1",
                            network="n", netns=netns, netns_id=netns_id)


def test_del_uses_cni_netns_only_when_it_is_the_recorded_namespace(tmp_path: Path) -> None:
    same_ns_other_path = "/proc/thread-self/ns/net"  # our netns under another path
    record = _record(OWN, NetnsId.of(OWN))
    assert trusted_netns(same_ns_other_path, record) == same_ns_other_path
    assert trusted_netns("", record) == OWN
    # a different netns (here: a path that is not a netns at all) -> the record's own
    assert trusted_netns(str(tmp_path), record) == OWN


def test_del_treats_a_gone_recorded_netns_as_deleted(tmp_path: Path) -> None:
    gone = _record(str(tmp_path / "gone"), NetnsId(1, 2))
    assert trusted_netns(OWN, gone) == ""  # never the netns the runtime names instead
    assert trusted_netns("", gone) == ""
    reused = _record(OWN, NetnsId(1, 2))  # the path now names another namespace
    assert trusted_netns(OWN, reused) == ""


def test_version_1_records_compare_paths(tmp_path: Path) -> None:
    v1 = _record(OWN, None)
    assert trusted_netns("", v1) == OWN
    assert trusted_netns(str(tmp_path), v1) == OWN  # the recorded path still exists
    v1_gone = _record(str(tmp_path / "gone"), None)
    assert trusted_netns("/var/run/netns/x", v1_gone) == "/var/run/netns/x"  # as before


def test_add_that_started_before_the_del_finished_is_late(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    args = CmdArgs(command=Command.ADD, container_id="c1", ifname="net1")
    started = boottime_ns()
    refuse_late_add(store, args, started)  # no DEL yet
    store.write_tombstone("c1", "net1")
    with pytest.raises(CniError) as e:
        refuse_late_add(store, args, started)
    assert e.value.code == 11 and "deleted while this ADD was queued" in e.value.msg
    refuse_late_add(store, args, boottime_ns())  # a new ADD after the DEL
    refuse_late_add(store, CmdArgs(command=Command.ADD, container_id="c2", ifname="net1"),
                    started)  # another attachment


@pytest.mark.parametrize("prev", [
    '{"cniVersion": "1.1.0", "interfaces": [{"name": "a", "mtu": 1e999}]}',
    '{"cniVersion": "1.1.0", "ips": "x"}', '"text"'])
def test_unusable_prev_result_is_code_7_for_add_and_check_ignored_for_del(prev: str) -> None:
    raw = f'{{"cniVersion": "1.1.0", "name": "n", "type": "sriov", "prevResult": {prev}}}'.encode()
    for command in (Command.ADD, Command.CHECK):
        with pytest.raises(CniError) as e:
            NetConf.parse(raw, CmdArgs(command=command))
        assert e.value.code == 7  # was 999 for 1e999 (OverflowError)
    assert NetConf.parse(raw, CmdArgs(command=Command.DEL)).prev_result is None
    assert json.loads(raw.replace(b"1e999", b"1"))  # the document itself is valid JSON
