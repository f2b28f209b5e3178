"""Fuzzing the device-plugin pool config: the parser and a running plugin's reload.

The parser must either accept a document or raise ``PoolConfigError`` (naming the field for
anything past JSON decoding) - never another exception. A running ``sriov-device-plugin`` fed
invalid configs keeps its pools (kubelet still sees every device) and keeps running.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sriov.errors import PoolConfigError
from sriov.pools import PoolConfigProblems, parse_pool_config
from tests.reliability.conftest import size, write_artifact

PARSER_CASES = size(400, 3000)
RELOAD_CASES = size(6, 25)
SELECTOR_KEYS = [
    "vendors",
    "devices",
    "drivers",
    "pfNames",
    "rootDevices",
    "linkTypes",
    "ddpProfiles",
    "isRdma",
    "needVhostNet",
    "pciAddresses",
    "acpiIndexes",
    "IsRdma",
]
POOL_KEYS = [
    "resourceName",
    "resourcePrefix",
    "deviceType",
    "excludeTopology",
    "selectors",
    "additionalInfo",
]
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["../../etc", "a" * 5000, "0000:3b:02.0", "enp59s0f0#0-3", "8086", "iavf"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SELECTOR = st.dictionaries(
    st.sampled_from(SELECTOR_KEYS), st.one_of(VALUE, st.lists(SCALAR, max_size=3)), max_size=4
)
POOL = st.dictionaries(
    st.sampled_from(POOL_KEYS), st.one_of(VALUE, st.lists(SELECTOR, max_size=2)), max_size=6
)
DOC = st.one_of(
    st.builds(lambda pools: {"resourceList": pools}, st.lists(POOL, max_size=3)),
    st.dictionaries(st.text(max_size=12), VALUE, max_size=3),
    VALUE,
)
RAW = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [b"[" * 5000, b'{"a":' * 4000, b"\xff", b'{"resourceList": [], "resourceList": []}']
    ),
)


def _outcome(data: bytes) -> str:
    try:
        parse_pool_config(data)
    except PoolConfigProblems as e:
        assert e.problems and all(str(p) for p in e.problems)
        # every problem names its JSON path, except one about the document root itself
        assert all(p.field for p in e.problems) or len(e.problems) == 1, [
            str(p) for p in e.problems
        ]
        return "rejected (field named)" if e.problems[0].field else "rejected (document root)"
    except PoolConfigError as e:
        assert str(e)
        return "rejected (document)"
    return "accepted"


def test_parser_accepts_or_names_the_field() -> None:
    outcomes: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=PARSER_CASES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(DOC.map(lambda d: json.dumps(d).encode()), RAW))
    def check(data: bytes) -> None:
        outcomes[_outcome(data)] += 1

    check()
    write_artifact(
        "fuzz_pools_parser", {"cases": sum(outcomes.values()), "outcomes": dict(outcomes)}
    )
    assert sum(outcomes.values()) >= min(PARSER_CASES, 100)


def _invalid_docs(n: int) -> list[bytes]:
    docs = [
        b"{",
        b"[" * 5000,
        json.dumps({"resourceList": [{"resourceName": 7}]}).encode(),
        json.dumps(
            {"resourceList": [{"resourceName": "x", "selectors": [{"drivers": "iavf"}]}]}
        ).encode(),
        json.dumps({"resourceList": [{"resourceName": "../../etc", "selectors": [{}]}]}).encode(),
        json.dumps({"resourceList": "all"}).encode(),
        b"\xff\xfe",
    ]
    return (docs * (n // len(docs) + 1))[:n]


def test_running_plugin_keeps_its_pools_on_invalid_reloads(tmp_path: Path) -> None:
    from tests.conftest import require_root
    from tests.reliability.dp_harness import RESOURCE, VFS, device_plugin_stack

    require_root()
    log = tmp_path / "dp.log"
    rejected = 0
    with device_plugin_stack(tmp_path) as stack:
        for doc in _invalid_docs(RELOAD_CASES):
            want = log.read_text(errors="replace").count("config rejected") + 1
            stack.write_config(doc.decode(errors="replace") if doc != b"\xff\xfe" else "\ufffe")
            deadline = time.monotonic() + 20
            while log.read_text(errors="replace").count("config rejected") < want:
                assert time.monotonic() < deadline, "the plugin did not report the bad config"
                assert stack.proc is not None and stack.proc.poll() is None, "plugin died"
                time.sleep(0.05)
            rejected += 1
            assert stack.sim.capacity(RESOURCE) == VFS and RESOURCE in stack.sim.resources()
        assert stack.proc is not None and stack.proc.poll() is None
    write_artifact("fuzz_pools_reload", {"cases": rejected, "pools_kept": True})
