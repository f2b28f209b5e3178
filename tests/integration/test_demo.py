"""The demo end to end, as a user runs it: exit status, the summary, and nothing left behind."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_root, unique

pytestmark = pytest.mark.root


def _options(workdir: Path, **kw: object) -> object:
    from demo.runner import DemoOptions

    tag = unique("st-")  # "st-" + 6 hex: every link name stays within IFNAMSIZ
    return DemoOptions(workdir=workdir, pf_prefix=f"{tag}p", wire_prefix=f"{tag}w",
                       bridge=f"{tag}b", pod_prefix=f"{tag}-pod-", **kw)


def _our_links(options: object) -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    prefixes = (options.pf_prefix, options.wire_prefix, options.bridge)  # type: ignore[attr-defined]
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.split(":")[1].strip().startswith(prefixes)]


@pytest.fixture
def demo_options():  # type: ignore[no-untyped-def]
    """Options with st- link names and a fresh short work dir (pytest's tmp_path is too long
    for the unix sockets below it); tears down whatever a failed test left up."""
    require_root()
    holder: list[object] = []
    base = Path(tempfile.mkdtemp(prefix="st-demo-"))

    def make(**kw: object) -> object:
        holder.append(_options(base / f"w{len(holder)}", **kw))
        return holder[-1]

    yield make
    from demo import teardown

    for options in holder:  # a failed assertion must not leave a demo up
        teardown.down(options.workdir, io.StringIO())  # type: ignore[attr-defined]
    shutil.rmtree(base, ignore_errors=True)


def _run(options: object) -> tuple[int, str]:
    from demo import runner

    out = io.StringIO()
    return runner.run(options, out), out.getvalue()  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", ["auto", "netns"])
def test_demo_runs_end_to_end_and_nothing_leaks(demo_options, runtime: str) -> None:
    options = demo_options(runtime=runtime)
    status, output = _run(options)
    assert status == 0, output
    assert "NOTHING LEAKED" in output
    assert "✗" not in output
    assert "identical to before" in output and "no CNI state files" in output
    assert "no IPAM leases" in output and "no pod netns left (2 created)" in output
    assert "3 packets received" in output  # ping A -> B over the VFs
    assert "is back in the host as" in output
    if runtime == "netns":  # pod B found its VF through the simulator's pod-resources API
        assert "asked pod-resources" in output
    assert _our_links(options) == []
    assert not any(Path("/run/netns", f"{options.pod_prefix}{p}").exists() for p in "ab")
    assert not options.workdir.exists()


def test_a_too_long_workdir_is_refused_with_the_reason(tmp_path: Path) -> None:
    require_root()
    status, output = _run(_options(tmp_path / ("x" * 60)))
    assert status == 1
    assert "too long" in output and "--workdir" in output


def test_a_failing_step_exits_nonzero_and_cleans_up(demo_options, tmp_path: Path) -> None:
    from demo.stack import DEFAULT_CONFIG_DIR

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "pools.json").write_text((DEFAULT_CONFIG_DIR / "pools.json").read_text())
    conflist = json.loads((DEFAULT_CONFIG_DIR / "sriov-net.conflist").read_text())
    conflist["plugins"][0]["vlan"] = 5000  # the plugin refuses it at ADD
    (configs / "sriov-net.conflist").write_text(json.dumps(conflist))
    options = demo_options(runtime="netns", config_dir=configs)

    status, output = _run(options)

    assert status == 1
    assert "✗  [4] pods started with the sriov CNI failed" in output
    assert "vlan" in output  # the reason names the field
    assert "result: FAILED" in output
    assert _our_links(options) == []
    assert not any(Path("/run/netns", f"{options.pod_prefix}{p}").exists() for p in "ab")
    assert not options.workdir.exists()


def test_keep_leaves_the_demo_up_until_down(demo_options) -> None:
    from demo import teardown
    from demo.stack import Layout, Manifest, is_our_process

    options = demo_options(runtime="netns", keep=True)
    status, output = _run(options)
    assert status == 0, output
    assert f"sriovctl demo --down --workdir {options.workdir}" in output
    manifest = Manifest.load(Layout(workdir=options.workdir))
    assert manifest is not None
    assert all(is_our_process(manifest.pids[n], manifest.argv[n]) for n in manifest.pids)
    assert _our_links(options) != []

    out = io.StringIO()
    assert teardown.down(options.workdir, out) == 0

    assert "is down" in out.getvalue()
    assert not any(is_our_process(manifest.pids[n], manifest.argv[n]) for n in manifest.pids)
    assert _our_links(options) == []
    assert not any(Path("/run/netns", f"{options.pod_prefix}{p}").exists() for p in "ab")
    assert not options.workdir.exists()
