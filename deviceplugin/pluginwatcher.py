"""Plugin-watcher registration (kubelet ``plugins_registry``), per pool.

Instead of calling ``Register`` on ``kubelet.sock``, each pool serves
``pluginregistration.Registration`` on its own socket in the registry dir; kubelet's
plugin watcher finds the socket, calls ``GetInfo`` (type ``DevicePlugin``, name =
the resource, endpoint = the full path of the pool's DevicePlugin socket), dials
that endpoint like a registered plugin, then calls ``NotifyRegistrationStatus``.
Removing the socket deregisters; a new socket (after a server restart) re-registers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

from deviceplugin.api.pluginregistration import api_pb2 as reg
from deviceplugin.api.pluginregistration import api_pb2_grpc as reg_grpc
from deviceplugin.errors import DevicePluginError

log = logging.getLogger(__name__)

PLUGIN_TYPE = "DevicePlugin"
SUPPORTED_VERSIONS = ("v1beta1",)
DEFAULT_PLUGINS_REGISTRY = Path("/var/lib/kubelet/plugins_registry")
UNIX_PATH_LIMIT = 107  # sun_path is 108 bytes with the NUL; gRPC refuses longer

StatusCallback = Callable[[bool, str], None]


class RegistrationServicer(reg_grpc.RegistrationServicer):
    def __init__(self, resource: str, endpoint: Path, on_status: StatusCallback) -> None:
        self._resource = resource
        self._endpoint = endpoint
        self._on_status = on_status

    def GetInfo(self, request: reg.InfoRequest, context: grpc.ServicerContext) -> reg.PluginInfo:
        return reg.PluginInfo(type=PLUGIN_TYPE, name=self._resource,
                              endpoint=str(self._endpoint),
                              supported_versions=list(SUPPORTED_VERSIONS))

    def NotifyRegistrationStatus(self, request: reg.RegistrationStatus,
                                 context: grpc.ServicerContext
                                 ) -> reg.RegistrationStatusResponse:
        self._on_status(request.plugin_registered, request.error)
        return reg.RegistrationStatusResponse()


class WatcherRegistration:
    """The Registration socket of one pool in the plugins registry dir."""

    def __init__(self, resource: str, registry_dir: Path, on_status: StatusCallback) -> None:
        self.resource = resource
        self.registry_dir = registry_dir
        self._on_status = on_status
        self._server: grpc.Server | None = None
        self.socket_path: Path | None = None

    def serve(self, endpoint: Path, socket_name: str) -> None:
        """(Re)serve GetInfo pointing at ``endpoint`` on ``<registry_dir>/<socket_name>``."""
        self.stop()
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        path = self.registry_dir / socket_name
        if len(str(path).encode()) >= UNIX_PATH_LIMIT:
            raise DevicePluginError("--plugins-registry",
                                    f"socket path {path} exceeds the unix limit "
                                    f"({UNIX_PATH_LIMIT} bytes); use a shorter dir")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2,
                                                        thread_name_prefix="dp-reg"))
        reg_grpc.add_RegistrationServicer_to_server(
            RegistrationServicer(self.resource, endpoint, self._on_status), server)
        # bind under a hidden name (the watcher skips dot files) and rename it into place
        # once serving, so kubelet never dials a socket that does not answer yet
        hidden = self.registry_dir / f".{socket_name}"
        hidden.unlink(missing_ok=True)
        server.add_insecure_port(f"unix://{hidden}")
        server.start()
        os.chmod(hidden, 0o600)
        os.replace(hidden, path)
        self._server = server
        self.socket_path = path
        log.info("plugin-watcher socket resource=%s socket=%s endpoint=%s",
                 self.resource, path, endpoint)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0).wait(5)
            self._server = None
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
            self.socket_path = None
