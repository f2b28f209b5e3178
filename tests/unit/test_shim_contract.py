"""One contract, two shims: the stdlib Python shim and the native one (docs/shim-protocol.md).

Every test runs against both installed executables, as a runtime runs them (fresh process,
env + stdin, cwd /), talking to real unix sockets: fake agents, agents listening as another
uid, and the real ``cni.agent``. The native shim is built in this session by hack/build-shim.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni import protocol, shim, skel
from cni.agent import CniAgent
from cni.errors import CniCode
from cni.main import Runtime
from tests.unit.shim_fakes import (
    REPO,
    FakeAgent,
    ForgedAgent,
    Shim,
    build_native,
    install_python_shim,
    reply,
)

NOBODY = 65534
LIMIT = shim.FRAME_LIMIT


@pytest.fixture(scope="session")
def native_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("native") / "sriov-shim"
    reason = build_native(out)
    if reason:
        pytest.skip(reason)
    return out


@pytest.fixture(params=["python", "native"])
def sriov(request: pytest.FixtureRequest, tmp_path: Path) -> Shim:
    bin_dir = tmp_path / "bin"
    if request.param == "python":
        return Shim("python", install_python_shim(bin_dir))
    bin_dir.mkdir()
    shutil.copy(request.getfixturevalue("native_binary"), bin_dir / "sriov")
    return Shim("native", bin_dir / "sriov")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    return d


def env_for(sock: Path, command: str = "ADD", **extra: str) -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni", "PATH": "/usr/bin:/bin",
            "SRIOV_CNI_AGENT_SOCKET": str(sock), **extra}


CONF = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "sriov"}).encode()

VERSION_INPUTS = [
    b"", b"   \n", b'{"cniVersion":"0.3.1"}', b'{"cniVersion": "9.9.9"}', b'{"cniVersion": ""}',
    b'{"cniVersion": 1}', b'["cniVersion", "0.4.0"]', b"not json", b'{"cniVersion":"0.4.0"} x',
    b'{"cniVersion":"0.2.0","cniVersion":"1.0.0"}', b'{"cniVersion":"a","cniVersion":null}',
    b'\xef\xbb\xbf{"cniVersion":"0.4.0"}', b'{"a": [NaN, -Infinity, 1e999, {}], "cniVersion": "x"}',
    '{"cniVersion": "\\ud83d\\ude00 \u00e9\\n\u2603\\u007f"}'.encode(), b'{"cniVersion":"\xff"}',
    b'{"cni\\u0056ersion":"0.3.0"}', b'{"cniVersion":"1\x01"}', b'{"x": 01, "cniVersion":"0.3.0"}',
    b'{"x": [1,], "cniVersion":"0.3.0"}', b'{"x": "\\q", "cniVersion":"0.3.0"}',
]


def expected_version(stdin: bytes) -> bytes:
    answer = protocol.version_answer(skel.request_version(stdin) if stdin.strip() else None)
    return (json.dumps(answer) + "\n").encode()


@pytest.mark.parametrize("stdin", VERSION_INPUTS)
def test_version_is_answered_without_an_agent_like_the_plugin(
        sriov: Shim, tmp_path: Path, stdin: bytes) -> None:
    run = sriov.run(env_for(tmp_path / "none.sock", "VERSION"), stdin)
    assert (run.status, run.stdout) == (0, expected_version(stdin))


def test_version_never_reaches_the_agent(sriov: Shim, run_dir: Path) -> None:
    agent = FakeAgent(run_dir / "a.sock", reply(1, b"", b"agent answered\n"))
    try:
        run = sriov.run(env_for(run_dir / "a.sock", "VERSION"), b'{"cniVersion":"0.4.0"}')
    finally:
        agent.close()
    assert run.one_json()["cniVersion"] == "0.4.0" and agent.connections == 0


def test_forwards_cni_env_and_stdin_and_passes_the_reply_through(sriov: Shim,
                                                                 run_dir: Path) -> None:
    out, err = b'{"cniVersion":"1.0.0","interfaces":[]}\n', b"agent log line\n"
    agent = FakeAgent(run_dir / "a.sock", reply(3, err, out))
    stdin = CONF + b"\n\xff\x00binary tail"
    env = env_for(run_dir / "a.sock", CNI_ARGS="K8S_POD_NAME=p;X=a=b", SECRET="no",
                  SRIOV_CNI_STATE_DIR="/elsewhere")
    try:
        run = sriov.run(env, stdin)
    finally:
        agent.close()
    assert (run.status, run.stdout, run.stderr) == (3, out, err)
    (request,) = agent.requests
    assert request.stdin == stdin
    assert request.env == {k: v.encode() for k, v in env.items()
                           if k.startswith("CNI_") or k == "PATH"}


def test_real_agent_round_trip(sriov: Shim, run_dir: Path, tmp_path: Path) -> None:
    runtime = Runtime(sysfs_root=tmp_path, state_dir=tmp_path / "state")
    agent = CniAgent(run_dir / "agent.sock", runtime.plugin)
    thread = agent.start()
    try:
        run = sriov.run(env_for(run_dir / "agent.sock"), CONF)  # ADD without a deviceID
    finally:
        agent.stop()
        thread.join(10)
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == CniCode.INVALID_CONFIG and b"cid=c1" in run.stderr


def test_no_agent_is_try_again(sriov: Shim, tmp_path: Path) -> None:
    for sock in (tmp_path / "none.sock", tmp_path / "no-dir/none.sock"):
        run = sriov.run(env_for(sock), CONF)
        doc = run.one_json()
        assert run.status == 1 and doc["code"] == 11 and doc["cniVersion"] == "1.0.0"
        assert "not running" in doc["msg"] and b"Traceback" not in run.stderr


def test_refused_connection_is_no_agent(sriov: Shim, run_dir: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(run_dir / "stale.sock"))  # bound, never listening: ECONNREFUSED
    try:
        doc = sriov.run(env_for(run_dir / "stale.sock"), CONF).one_json()
    finally:
        stale.close()
    assert doc["code"] == 11 and "not running" in doc["msg"]


def test_oversized_stdin_is_a_permanent_error_and_never_sent(sriov: Shim, run_dir: Path) -> None:
    agent = FakeAgent(run_dir / "a.sock")
    try:
        run = sriov.run(env_for(run_dir / "a.sock"), b" " * (LIMIT + 1))
    finally:
        agent.close()
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == CniCode.INVALID_CONFIG and "too large" in doc["msg"]
    assert agent.requests == []


def test_stdin_at_the_limit_is_forwarded(sriov: Shim, run_dir: Path) -> None:
    agent = FakeAgent(run_dir / "a.sock")
    try:
        run = sriov.run(env_for(run_dir / "a.sock"), b" " * LIMIT)
    finally:
        agent.close()
    assert run.status == 0 and len(agent.requests[0].stdin) == LIMIT


def test_agent_timeout_is_try_again(sriov: Shim, run_dir: Path) -> None:
    agent = FakeAgent(run_dir / "a.sock", answer=None)  # reads the request, never answers
    try:
        run = sriov.run(env_for(run_dir / "a.sock", SRIOV_CNI_SHIM_TIMEOUT="0.5"), CONF)
    finally:
        agent.close()
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == 11 and len(agent.requests) == 1


def test_connection_broken_after_the_request_is_try_again(sriov: Shim, run_dir: Path) -> None:
    agent = FakeAgent(run_dir / "a.sock", answer=b"")  # the agent "dies" mid-request
    try:
        run = sriov.run(env_for(run_dir / "a.sock", "DEL"), CONF)
    finally:
        agent.close()
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == 11 and "connection failed" in doc["msg"]


@pytest.mark.parametrize(("var", "value"), [("SRIOV_CNI_SHIM_TIMEOUT", "0"),
                                             ("SRIOV_CNI_SHIM_TIMEOUT", "1e3"),
                                             ("SRIOV_CNI_AGENT_UID", "-1"),
                                             ("SRIOV_CNI_AGENT_UID", "nobody")])
def test_bad_shim_settings_are_invalid_env(sriov: Shim, tmp_path: Path, var: str,
                                          value: str) -> None:
    run = sriov.run(env_for(tmp_path / "none.sock", **{var: value}), CONF)
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == CniCode.INVALID_ENV and var in doc["msg"]


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="forging an agent of another uid needs root")


@needs_root
def test_agent_of_another_uid_is_refused_before_the_netconf_is_sent(sriov: Shim,
                                                                    run_dir: Path) -> None:
    forged = ForgedAgent(run_dir / "a.sock", NOBODY)
    run = sriov.run(env_for(run_dir / "a.sock"), CONF)
    assert forged.received() == 0, "the netconf reached the forged agent"
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == CniCode.UNTRUSTED_AGENT
    assert f"uid {NOBODY}" in doc["details"]


@needs_root
@pytest.mark.parametrize(("mode", "owner"), [(0o777, 0), (0o770, 0), (0o700, NOBODY)])
def test_socket_dir_writable_by_others_is_refused(sriov: Shim, tmp_path: Path, mode: int,
                                                  owner: int) -> None:
    run_dir = tmp_path / "shared"
    run_dir.mkdir()
    os.chmod(run_dir, mode)
    os.chown(run_dir, owner, owner)
    agent = FakeAgent(run_dir / "a.sock", reply(0, b"", b"forged\n"))  # a root listener
    try:
        run = sriov.run(env_for(run_dir / "a.sock"), CONF)
    finally:
        agent.close()
    doc = run.one_json()
    assert run.status == 1 and doc["code"] == CniCode.UNTRUSTED_AGENT and agent.requests == []


@needs_root
def test_configured_agent_uid_is_trusted(sriov: Shim, tmp_path: Path) -> None:
    run_dir = tmp_path / "agent-home"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, NOBODY, NOBODY)
    forged = ForgedAgent(run_dir / "a.sock", NOBODY)
    run = sriov.run(env_for(run_dir / "a.sock", SRIOV_CNI_AGENT_UID=str(NOBODY)), CONF)
    assert forged.received() > len(CONF)
    assert run.status == 0 and run.one_json()["interfaces"] == [{"name": "forged"}]


def test_both_shims_print_the_same_errors(native_binary: Path, tmp_path: Path) -> None:
    python = Shim("python", install_python_shim(tmp_path / "py"))
    native = Shim("native", native_binary)
    cases = [(env_for(tmp_path / "none.sock"), CONF),
             (env_for(tmp_path / "none.sock"), b"x" * (LIMIT + 1)),
             (env_for(tmp_path / "none.sock", SRIOV_CNI_AGENT_UID="x"), CONF)]
    for env, stdin in cases:
        a, b = python.run(env, stdin).one_json(), native.run(env, stdin).one_json()
        a.pop("details"), b.pop("details")
        assert a == b


def test_shim_constants_match_the_plugin() -> None:
    assert shim.SUPPORTED_VERSIONS == protocol.SUPPORTED_VERSIONS
    assert shim.CURRENT_VERSION == protocol.CURRENT_VERSION
    assert shim.CODE_UNTRUSTED_AGENT == CniCode.UNTRUSTED_AGENT
    header = (REPO / "shim/version_json.h").read_text()
    assert json.dumps(list(protocol.SUPPORTED_VERSIONS)).replace('"', '\\"') in header


@pytest.fixture(scope="session")
def sanitized_binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not shutil.which("gcc"):
        pytest.skip("gcc missing: no ASan/UBSan build of the native shim")
    out = tmp_path_factory.mktemp("asan") / "sriov-shim"
    src = REPO / "shim/sriov-shim.c"
    proc = subprocess.run(["gcc", "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror",
                           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                           "-o", str(out), str(src)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    yield out


def test_native_parser_differential_fuzz_under_asan(sanitized_binary: Path, tmp_path: Path) -> None:
    """Random JSON-ish VERSION requests: the sanitized native shim answers what the plugin does."""
    import random

    rng = random.Random(1234)
    atoms = [b"{", b"}", b"[", b"]", b",", b":", b'"cniVersion"', b'"0.3.1"', b'"\\u00e9"',
             b'"\\ud800"', b"1", b"-0.5e3", b"NaN", b"null", b" ", b"\n", b'"', b"\\", b"\xc3\xa9",
             b"\xed\xa0\x80", b"\xff", b"tru", b"01", b'"x\x01"', b"-Infinity", b"1" * 4301]
    asan = Shim("asan", sanitized_binary)
    env = {"CNI_COMMAND": "VERSION", "ASAN_OPTIONS": "detect_leaks=1",
           "SRIOV_CNI_AGENT_SOCKET": str(tmp_path / "none.sock")}
    docs = [b'{"cniVersion": "0.4.0"}']
    for _ in range(120):
        parts = [rng.choice(atoms) for _ in range(rng.randint(0, 12))]
        docs.append(b"".join(parts))
        docs.append(b'{"a": ' + b"".join(parts) + b', "cniVersion": "0.2.0"}')
    for stdin in docs + VERSION_INPUTS:
        run = asan.run(env, stdin)
        assert (run.status, run.stdout, run.stderr) == (0, expected_version(stdin), b""), stdin


def test_native_round_trip_under_asan(sanitized_binary: Path, run_dir: Path) -> None:
    out, err = b'{"cniVersion":"1.0.0"}\n', b"log\n"
    agent = FakeAgent(run_dir / "a.sock", reply(0, err, out))
    try:
        run = Shim("asan", sanitized_binary).run(
            {**env_for(run_dir / "a.sock"), "ASAN_OPTIONS": "detect_leaks=1"}, CONF)
    finally:
        agent.close()
    assert (run.status, run.stdout, run.stderr) == (0, out, err)


def test_native_round_trip_under_valgrind(run_dir: Path, tmp_path: Path) -> None:
    """Memcheck on a dynamic -g build (a static binary hides malloc from valgrind)."""
    if not (shutil.which("valgrind") and shutil.which("gcc")):
        pytest.skip("valgrind or gcc missing (hack/setup.sh installs both)")
    binary = tmp_path / "sriov-shim-g"
    subprocess.run(["gcc", "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
                    str(binary), str(REPO / "shim/sriov-shim.c")], check=True)
    out = b'{"cniVersion":"1.0.0"}\n'
    agent = FakeAgent(run_dir / "a.sock", reply(0, b"log\n", out))
    valgrind = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=all", str(binary)]
    try:
        proc = subprocess.run(valgrind, input=CONF, env=env_for(run_dir / "a.sock"),
                              capture_output=True, timeout=120, check=False)
    finally:
        agent.close()
    assert (proc.returncode, proc.stdout) == (0, out), proc.stderr.decode()
    assert proc.stderr == b"log\n"  # nothing from valgrind
