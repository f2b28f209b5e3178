"""Fuzzing the CNI boundary (stdin + env) with hypothesis.

Every generated case carries at least one defect (malformed JSON, wrong type, huge value,
unicode, path traversal in deviceID / CNI_NETNS / CNI_IFNAME / CNI_CONTAINERID, unsupported
version...). Each must end with exactly one spec error JSON on stdout (parses; ``code`` and
``msg``), a non-zero exit, no traceback, and must touch nothing: no state or IPAM files, no
link in the pod netns, no link of the emulated host renamed, moved or created.
In-process (``cni.main.run``) for volume; the real ``sriov`` executable for a smaller sample.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import require_root
from tests.reliability.conftest import (
    Node,
    Reply,
    del_netns,
    emulated_node,
    files_under,
    new_netns,
    records_left,
    run_inprocess,
    run_shim,
    size,
    write_artifact,
)

pytestmark = pytest.mark.root
IN_PROCESS_CASES = size(250, 1500)
SHIM_CASES = size(12, 120)
COUNTS: collections.Counter[str] = collections.Counter()

TRAVERSAL = st.sampled_from(
    [
        "../../etc",
        "/sys/bus/pci/devices/../../../etc",
        "..",
        ".",
        "/etc/passwd",
        "0000:3b:10.0/../../x",
        "~root",
        "a/b",
        "\x00",
        "0000:3b:10.0\n",
        "${HOME}",
        "$(id)",
        "`id`",
        "-rf",
        "a b",
    ]
)
TEXT = st.text(min_size=0, max_size=40)
HUGE = st.sampled_from(["x" * 70_000, "9" * 5000, "é" * 20_000])
JUNK_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    TEXT,
    HUGE,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(TEXT, st.integers(), max_size=2),
)
KEYS = [
    "cniVersion",
    "name",
    "type",
    "deviceID",
    "pciBusID",
    "vlan",
    "vlanQoS",
    "vlanProto",
    "mac",
    "spoofchk",
    "trust",
    "link_state",
    "min_tx_rate",
    "max_tx_rate",
    "mtu",
    "ipam",
    "dns",
    "runtimeConfig",
    "args",
    "prevResult",
    "fallback",
    "logLevel",
    "podResourcesSocket",
    "resourceName",
    "stateDir",
]
BAD_VALUES: dict[str, Any] = {
    "cniVersion": st.sampled_from(["9.9.9", "0.0.1", "1.1", "1.1.0 ", "latest"]),  # "" = 0.1.0
    "name": st.one_of(HUGE, st.sampled_from(["../x", "", "a/b", "名前", "-x", "a\n"])),
    "deviceID": st.one_of(TRAVERSAL, HUGE, st.text(max_size=20), st.sampled_from(["0000:99:00.0"])),
    "vlan": st.one_of(st.sampled_from([-1, 4095, 10**30, "10", 1.5, True]), st.just(None)),
    "mtu": st.sampled_from([0, 67, 65536, 10**30, -1, "1500", 1.5]),
    "mac": st.sampled_from(["zz:zz:zz:zz:zz:zz", "01:00:00:00:00:01", "00:00:00:00:00:00", 5]),
    "stateDir": st.sampled_from(["relative/dir", "", 7, "../../etc"]),
    "ipam": st.one_of(
        st.sampled_from(
            [[], "host-local", 1, {"type": "../../bin/sh"}, {"type": "host-local", "ranges": "x"}]
        )
    ),
}


def _case_strategy(node: Node, pod: str) -> st.SearchStrategy[tuple[str, dict[str, str], bytes]]:
    vf = node.kernel_vfs()[0].address

    @st.composite
    def case(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
        conf = node.conf(vf)
        env = node.env("ADD", "stfuzz0", pod)
        defect = draw(
            st.sampled_from(
                [
                    "stdin-bytes",
                    "stdin-nonobject",
                    "key-junk",
                    "key-bad",
                    "missing-key",
                    "env-netns",
                    "env-ifname",
                    "env-cid",
                    "env-command",
                    "version",
                ]
            )
        )
        stdin: bytes | None = None
        if defect == "stdin-bytes":
            stdin = draw(
                st.one_of(
                    st.binary(max_size=200),
                    st.sampled_from(
                        [b"", b"{", b'{"cniVersion": "1.1.0",', b"\xff\xfe{}", b"[" * 5000, b"null"]
                    ),
                )
            )
            if stdin.strip().startswith((b"{", b"[")) and _is_json_object(stdin):
                stdin = b"{" + stdin  # keep it malformed
        elif defect == "stdin-nonobject":
            stdin = json.dumps(
                draw(
                    st.one_of(
                        st.lists(st.integers(), max_size=3), TEXT, st.integers(), st.just(None)
                    )
                )
            ).encode()
        elif defect == "key-junk":
            key = draw(st.sampled_from(KEYS))
            value = draw(JUNK_VALUE)
            conf[key] = value
            if _maybe_valid(key, value):
                conf["vlan"] = "not-a-number"  # guarantee a defect
        elif defect == "key-bad":
            key = draw(st.sampled_from(sorted(BAD_VALUES)))
            conf[key] = draw(BAD_VALUES[key])
            if key == "vlan" and conf[key] is None:
                conf["vlanQoS"] = 3  # vlanQoS without vlan
        elif defect == "missing-key":
            conf.pop(
                draw(st.sampled_from(["cniVersion", "name"]))
            )  # "type" is the runtime's business
            if "cniVersion" not in conf:
                conf["name"] = "../bad"  # a missing version means 0.1.0 in libcni: add a defect
        elif defect == "env-netns":
            env["CNI_NETNS"] = draw(
                st.one_of(
                    TRAVERSAL,
                    st.sampled_from(
                        ["", "relative/ns", "/var/run/netns/st-missing", "/proc/self/ns/net"]
                    ),
                    HUGE,
                )
            )
        elif defect == "env-ifname":
            env["CNI_IFNAME"] = draw(
                st.one_of(
                    HUGE,
                    st.sampled_from(
                        [
                            "../../etc",
                            "..",
                            ".",
                            "a/b",
                            "\x00",
                            "a b",
                            "0000:3b:10.0\n",
                            "",
                            "a" * 16,
                            "eth0:1",
                            "名前名前名前",
                            "x\ty",
                        ]
                    ),
                )
            )
        elif defect == "env-cid":
            env["CNI_CONTAINERID"] = draw(
                st.one_of(
                    TRAVERSAL,
                    HUGE,
                    st.sampled_from(["", "-x", "id\n", "a/../../b", ".hidden", "ü"]),
                )
            )
        elif defect == "env-command":
            env["CNI_COMMAND"] = draw(st.one_of(st.sampled_from(["add", "DELETE", "ADD\n"]), TEXT))
            if env["CNI_COMMAND"] in (
                "",
                "ADD",
                "DEL",
                "CHECK",
                "GC",
                "STATUS",
                "VERSION",
            ):  # "" = about
                env["CNI_COMMAND"] = "NOPE"
        elif defect == "version":
            env["CNI_COMMAND"] = draw(st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS"]))
            conf["cniVersion"] = draw(st.sampled_from(["9.9.9", "2.0.0", "0.0.9", "1.2.0"]))
        if stdin is None:
            stdin = json.dumps(conf).encode()
        if draw(st.booleans()) and defect not in ("env-command", "version", "env-netns"):
            env["CNI_COMMAND"] = draw(st.sampled_from(["ADD", "CHECK"]))
        return defect, env, stdin

    return case()


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        return False


def _maybe_valid(key: str, value: Any) -> bool:
    """True when a random value might be acceptable for ``key`` (then we add a sure defect).

    Any number or bool may be valid (``"vlan": 0``, ``"mtu": 1500``, ``"trust": true``), and
    so is an empty string: ``"cniVersion": ""`` means 0.1.0 (libcni), and an empty string key
    is unset, as Go decodes it (``"mac": ""``). Any spoofchk/trust string is valid: exactly
    ``on`` is on, anything else off (sriov-cni).
    """
    if value is None or value == "" or isinstance(value, int | float):
        return True
    return key in (
        "spoofchk",
        "trust",
        "dns",
        "args",
        "runtimeConfig",
        "prevResult",
        "logLevel",
        "resourceName",
        "ipam",
        "fallback",
        "podResourcesSocket",
        "pciBusID",
        "type",
    )


def assert_one_error(reply: Reply) -> dict[str, Any]:
    assert reply.rc != 0, f"exit 0 for a defective case: {reply.stdout[:300]}"
    assert "Traceback" not in reply.stderr, reply.stderr[-2000:]
    text = reply.stdout.strip()
    doc = json.loads(text)  # exactly one document: json.loads refuses trailing data
    assert (
        isinstance(doc, dict)
        and isinstance(doc.get("code"), int)
        and isinstance(doc.get("msg"), str)
    )
    assert doc["msg"]
    assert doc["code"] != 999, f"unexpected internal error: {doc}"
    return doc


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_root()
    yield from emulated_node(tmp_path_factory.mktemp("fuzz"), vfs=2)


@pytest.fixture(scope="module")
def fuzz_pod() -> Iterator[str]:
    require_root()
    name = new_netns()
    try:
        yield f"/var/run/netns/{name}"
    finally:
        del_netns(name)


def _untouched(node: Node, pod: str, host_before: set[str]) -> None:
    assert records_left(node.state_dir) == [], files_under(node.state_dir)
    assert node.leases() == []
    assert {link.name for link in node.nl.links(pod)} == {"lo"}
    assert {
        link.name for link in node.nl.links() if link.name.startswith(f"st-{node.tag}")
    } == host_before
    for stray in (Path("/etc") / "st-fuzz", node.tmp.parent / "x"):
        assert not stray.exists()


def _run_cases(node: Node, pod: str, runner: Any, max_examples: int, label: str) -> None:
    host_before = {link.name for link in node.nl.links() if link.name.startswith(f"st-{node.tag}")}
    codes: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_case_strategy(node, pod))
    def check(case: tuple[str, dict[str, str], bytes]) -> None:
        defect, env, stdin = case
        if label == "shim":
            assume(not any("\x00" in v for v in env.values()))  # execve cannot pass a NUL
        reply = runner(env, stdin)
        if reply.rc == 0:  # undo before failing, so one bad case does not spoil the rest
            runner({**env, "CNI_COMMAND": "DEL"}, stdin)
        assert reply.rc != 0, f"exit 0 for defect {defect}: env={env} stdin={stdin[:300]!r}"
        doc = assert_one_error(reply)
        _untouched(node, pod, host_before)
        COUNTS[f"{label}:{defect}"] += 1
        codes[str(doc["code"])] += 1

    check()
    write_artifact(
        f"fuzz_cni_{label}",
        {
            "cases": sum(codes.values()),
            "codes": dict(codes),
            "by_defect": {
                k.split(":", 1)[1]: v for k, v in COUNTS.items() if k.startswith(label + ":")
            },
        },
    )


def test_fuzz_in_process(fuzz_node: Node, fuzz_pod: str) -> None:
    _run_cases(fuzz_node, fuzz_pod, run_inprocess, IN_PROCESS_CASES, "in_process")


def test_fuzz_through_the_shim(fuzz_node: Node, fuzz_pod: str) -> None:
    _run_cases(fuzz_node, fuzz_pod, lambda env, stdin: run_shim(env, stdin), SHIM_CASES, "shim")
