"""Kubelet's plugin watcher, simulated: discover Registration sockets in ``plugins_registry``.

Like kubelet's plugin manager: every socket that appears in the dir (and every one
already there at start) is dialled, ``GetInfo`` is called (1 s timeout), a
``DevicePlugin`` that supports ``v1beta1`` is handed to ``register(name, endpoint)``
(the device manager's dial -> GetDevicePluginOptions -> ListAndWatch), and the
outcome goes back through ``NotifyRegistrationStatus``. A removed socket deregisters.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc

from deviceplugin.api.pluginregistration import api_pb2 as reg
from deviceplugin.api.pluginregistration import api_pb2_grpc as reg_grpc
from deviceplugin.dirwatch import InotifyEvent, Mask, Watcher

log = logging.getLogger(__name__)

GET_INFO_TIMEOUT_S = 1.0
GET_INFO_ATTEMPTS = 5


class PluginWatcherSim:
    def __init__(self, registry_dir: Path, register: Callable[[str, Path], None],
                 deregister: Callable[[str], None]) -> None:
        self.registry_dir = registry_dir
        self._register = register
        self._deregister = deregister
        self._by_socket: dict[str, str] = {}
        self.statuses: list[tuple[str, bool, str]] = []
        """(socket name, registered, error) per NotifyRegistrationStatus sent."""
        self._watcher = Watcher(self._on_events, name="sim-pluginwatcher")

    def start(self) -> None:
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        self._watcher.watch(self.registry_dir, Mask.CREATE | Mask.MOVED_TO | Mask.DELETE
                            | Mask.MOVED_FROM | Mask.ONLYDIR)
        self._watcher.start()
        for path in sorted(self.registry_dir.iterdir()):
            self._discover(path)

    def stop(self) -> None:
        self._watcher.stop()

    def _on_events(self, events: Iterable[InotifyEvent]) -> None:
        for event in events:
            if event.mask & (Mask.CREATE | Mask.MOVED_TO):
                self._discover(self.registry_dir / event.name)
            elif event.mask & (Mask.DELETE | Mask.MOVED_FROM):
                resource = self._by_socket.pop(event.name, None)
                if resource is not None:
                    log.info("plugin socket removed, deregistering resource=%s", resource)
                    self._deregister(resource)

    def _discover(self, path: Path) -> None:
        try:
            if path.name.startswith(".") or not stat.S_ISSOCK(path.stat().st_mode):
                return
        except OSError:
            return
        with grpc.insecure_channel(f"unix://{path}") as channel:
            stub = reg_grpc.RegistrationStub(channel)
            for attempt in range(1, GET_INFO_ATTEMPTS + 1):  # kubelet's reconciler retries too
                try:
                    info = stub.GetInfo(reg.InfoRequest(), timeout=GET_INFO_TIMEOUT_S,
                                        wait_for_ready=True)
                    break
                except grpc.RpcError as e:
                    log.warning("GetInfo failed socket=%s attempt=%s code=%s",
                                path, attempt, e.code())
                    if attempt == GET_INFO_ATTEMPTS or not path.exists():
                        return
            error = self._validate(info)
            if not error:
                endpoint = Path(info.endpoint) if info.endpoint else path
                try:
                    self._register(info.name, endpoint)
                    self._by_socket[path.name] = info.name
                except (grpc.RpcError, OSError) as e:
                    error = f"cannot reach plugin at {endpoint}: {e}"
            self.statuses.append((path.name, not error, error))
            try:
                stub.NotifyRegistrationStatus(reg.RegistrationStatus(
                    plugin_registered=not error, error=error), timeout=GET_INFO_TIMEOUT_S)
            except grpc.RpcError as e:
                log.warning("NotifyRegistrationStatus failed socket=%s code=%s", path, e.code())

    @staticmethod
    def _validate(info: reg.PluginInfo) -> str:
        if info.type != "DevicePlugin":
            return f"unsupported plugin type {info.type!r}"
        if "v1beta1" not in info.supported_versions:
            return f"no supported version in {list(info.supported_versions)}"
        if "/" not in info.name or info.name.startswith("kubernetes.io/"):
            return f"not an extended resource name: {info.name!r}"
        return ""
