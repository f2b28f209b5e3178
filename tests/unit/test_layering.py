"""Architecture rules from docs/architecture.md, checked on the source and at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "/api/" not in str(p))


@pytest.mark.parametrize("package", ["sriov", "cni", "deviceplugin"])
def test_pyroute2_and_pyudev_only_in_their_adapters(package: str) -> None:
    offenders = []
    for path in _sources(package):
        mods = _imports(path)
        rel = path.relative_to(REPO).as_posix()
        if "pyroute2" in mods and not rel.startswith("sriov/netlink"):
            offenders.append(f"{rel} imports pyroute2")
        if "pyudev" in mods and rel != "sriov/udev.py":
            offenders.append(f"{rel} imports pyudev")
    assert offenders == []


def test_core_does_not_import_upper_layers_or_grpc() -> None:
    offenders = []
    for path in _sources("sriov"):
        bad = _imports(path) & {"cni", "deviceplugin", "grpc"}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    # kubernetes is allowed only lazily in the labels CLI (publishing to the API server)
    for path in _sources("sriov"):
        if "kubernetes" in _imports(path) and path.name != "labels.py":
            offenders.append(f"{path.relative_to(REPO)}: kubernetes")
    assert offenders == []


def test_cni_does_not_import_deviceplugin() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _sources("cni") if "deviceplugin" in _imports(p)]
    assert offenders == []


def test_deviceplugin_does_not_import_cni_at_module_level() -> None:
    offenders = []
    for path in _sources("deviceplugin"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only; lazy imports inside functions are allowed
            if isinstance(node, ast.Import | ast.ImportFrom):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if mod and mod.split(".")[0] == "cni":
                    offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_cni_main_stays_light() -> None:
    if not (REPO / "cni" / "main.py").exists():
        pytest.skip("cni/main.py not written yet")
    loaded = _modules_loaded_by("import cni.main")
    assert not {m for m in loaded if m.split(".")[0] in {"grpc", "kubernetes", "deviceplugin"}}


def test_cni_shim_loads_only_the_standard_library() -> None:
    if not (REPO / "cni" / "shim.py").exists():
        pytest.skip("cni/shim.py not written yet")
    # only what the import itself adds counts: site start-up (.pth finders) is not ours
    before = _modules_loaded_by("pass")
    loaded = _modules_loaded_by("import cni.shim") - before
    third_party = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"cni"}
    assert third_party == set()
    assert {m for m in loaded if m.startswith("cni.")} == {"cni.shim"}
