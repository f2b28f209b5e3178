"""Load pyroute2's rtnetlink modules without running ``pyroute2/__init__.py`` first.

That ``__init__`` eagerly imports every pyroute2 feature (NDB, IPDB, nl80211, WireGuard,
conntrack, plan9, ...): ~80 modules the netlink layer never uses, about a third of
pyroute2's import time. The agent pays it once; standalone CNI mode pays it on every pod
attach. :func:`lean_pyroute2` registers a bare ``pyroute2`` package object (same path, same
spec) so ``import pyroute2.iproute.linux`` loads only what that module needs. Nothing is lost:
a name the bare package does not have (``from pyroute2 import NDB``) is first tried as a
submodule, and otherwise the real ``__init__`` runs then, in the same module object (PEP 562
module ``__getattr__``). Standard library only; called before the first pyroute2 import.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import sys
import types
from typing import Any

log = logging.getLogger(__name__)
PACKAGE = "pyroute2"


def lean_pyroute2() -> None:
    """Register the bare ``pyroute2`` package unless pyroute2 is already imported or absent."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.machinery.PathFinder.find_spec(PACKAGE)
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return  # let the ordinary import report it
    package = types.ModuleType(PACKAGE)
    package.__spec__ = spec
    package.__loader__ = spec.loader
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = PACKAGE
    state = {"full": False}

    def full_init() -> None:
        if not state["full"]:
            state["full"] = True
            log.debug("loading the full pyroute2 package")
            spec.loader.exec_module(package)  # type: ignore[union-attr]

    def getattr_(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{PACKAGE}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{PACKAGE}.{name}":
                raise
        full_init()
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    package.__getattr__ = getattr_  # type: ignore[method-assign]
    sys.modules[PACKAGE] = package
