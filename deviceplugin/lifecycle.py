"""Serve -> confirm -> register, per pool; watch the plugin dir and re-register on kubelet restart.

One gRPC server and unix socket per pool (socket name unique per start). Kubelet
restarts are detected with inotify on the plugin dir, not by polling: our socket
deleted (kubelet's CleanupPluginDirectory) restarts that pool's server under a new
name and re-registers; ``kubelet.sock`` (re-)created re-registers every pool. A
failed ``Register`` (kubelet absent or refusing) is retried with backoff (1 s
doubling to 30 s). With ``plugins_registry`` set, registration is the plugin-watcher
socket instead (deviceplugin.pluginwatcher) and ``kubelet.sock`` is not used.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent import futures
from pathlib import Path

import grpc

from deviceplugin.api.v1beta1 import api_pb2 as pb
from deviceplugin.api.v1beta1 import api_pb2_grpc as pb_grpc
from deviceplugin.devicelist import add_device_plugin_servicer
from deviceplugin.dirwatch import InotifyEvent, Mask, Watcher
from deviceplugin.metrics import Metrics
from deviceplugin.pluginwatcher import WatcherRegistration
from deviceplugin.registry import DeviceRegistry, Snapshot
from deviceplugin.retry import DEFAULT_BACKOFF, Backoff, RetryTimer
from deviceplugin.servicer import DevicePluginServicer, ServiceOptions

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
DEFAULT_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
UNIX_PATH_MAX = 100  # sun_path is 108 bytes; gRPC refuses >= 107, keep a margin
SERVE_CONFIRM_TIMEOUT_S = 5.0
REGISTER_TIMEOUT_S = 10.0
_sequence = itertools.count()


def socket_name(resource: str, plugin_dir: Path, now: float | None = None) -> str:
    """``sriov-<prefix>_<name>-<ms>.sock``; hashed when the path would exceed the unix limit."""
    stamp = f"{int((time.time() if now is None else now) * 1000)}{next(_sequence) % 100:02d}"
    name = f"sriov-{resource.replace('/', '_')}-{stamp}.sock"
    if len(str(plugin_dir / name).encode()) > UNIX_PATH_MAX:
        digest = hashlib.sha256(resource.encode()).hexdigest()[:10]
        name = f"sriov-{digest}-{stamp}.sock"
    return name


class PoolServer:
    """The gRPC server of one pool on its own socket in the plugin dir."""

    def __init__(self, resource: str, plugin_dir: Path, registry: DeviceRegistry,
                 options: ServiceOptions, metrics: Metrics,
                 plugins_registry: Path | None = None) -> None:
        self.resource = resource
        self.plugin_dir = plugin_dir
        self._registry = registry
        self._options = options
        self._metrics = metrics
        self._server: grpc.Server | None = None
        self._servicer: DevicePluginServicer | None = None
        self.socket_name = ""
        self.registered = False
        self._watcher = (None if plugins_registry is None else
                         WatcherRegistration(resource, plugins_registry, self._on_watcher_status))

    @property
    def socket_path(self) -> Path:
        return self.plugin_dir / self.socket_name

    def start(self) -> None:
        self.socket_name = socket_name(self.resource, self.plugin_dir)
        self._servicer = DevicePluginServicer(self.resource, self._registry, self._options,
                                              self._metrics)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8,
                                                        thread_name_prefix="dp-grpc"))
        add_device_plugin_servicer(self._servicer, server)
        server.add_insecure_port(f"unix://{self.socket_path}")
        server.start()
        self._server = server
        # gRPC binds with the process umask (0755 socket); only kubelet (root) must connect
        os.chmod(self.socket_path, 0o600)
        with grpc.insecure_channel(f"unix://{self.socket_path}") as channel:
            grpc.channel_ready_future(channel).result(timeout=SERVE_CONFIRM_TIMEOUT_S)
        log.info("serving resource=%s socket=%s", self.resource, self.socket_path)

    def register(self) -> bool:
        """Call kubelet's Registration.Register; False (logged) when kubelet is not there.

        In plugin-watcher mode: (re)create our Registration socket; kubelet calls us.
        """
        if self._watcher is not None:
            self.registered = False
            self._watcher.serve(self.socket_path,
                                socket_name(self.resource, self._watcher.registry_dir))
            return True
        kubelet = self.plugin_dir / KUBELET_SOCKET
        request = pb.RegisterRequest(
            version=API_VERSION, endpoint=self.socket_name, resource_name=self.resource,
            options=pb.DevicePluginOptions(pre_start_required=False,
                                           get_preferred_allocation_available=True))
        try:
            with grpc.insecure_channel(f"unix://{kubelet}") as channel:
                pb_grpc.RegistrationStub(channel).Register(request, timeout=REGISTER_TIMEOUT_S)
        except grpc.RpcError as e:
            log.warning("register failed resource=%s kubelet=%s code=%s detail=%s",
                        self.resource, kubelet, e.code(), e.details())
            self._metrics.registration_failures.labels(self.resource).inc()
            self.registered = False
            return False
        self.registered = True
        self._metrics.registrations.labels(self.resource).inc()
        log.info("registered resource=%s endpoint=%s", self.resource, self.socket_name)
        return True

    def _on_watcher_status(self, registered: bool, error: str) -> None:
        self.registered = registered
        self._metrics.watcher_status.labels(self.resource, str(registered).lower()).inc()
        if registered:
            self._metrics.registrations.labels(self.resource).inc()
            log.info("registered via plugin watcher resource=%s endpoint=%s",
                     self.resource, self.socket_path)
        else:
            log.error("plugin watcher rejected resource=%s error=%s", self.resource, error)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._servicer is not None:
            self._servicer.stop()
            self._servicer.remove_devinfo_files()
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None
        if self.socket_name:
            self.socket_path.unlink(missing_ok=True)
        self.registered = False
        log.info("stopped resource=%s", self.resource)


class PluginManager:
    """Keeps one running, registered PoolServer per configured pool."""

    def __init__(self, plugin_dir: Path, registry: DeviceRegistry, options: ServiceOptions,
                 metrics: Metrics, *, backoff: Backoff = DEFAULT_BACKOFF,
                 plugins_registry: Path | None = None) -> None:
        self.plugin_dir = plugin_dir
        self.plugins_registry = plugins_registry
        self._registry = registry
        self._options = options
        self._metrics = metrics
        self._lock = threading.RLock()
        self.servers: dict[str, PoolServer] = {}
        self._watcher = Watcher(self._on_dir_events, name="dp-plugindir")
        self.retry = RetryTimer(self._retry_register, backoff, name="dp-register-retry")
        self._stopped = False

    def start(self) -> None:
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self.retry.start()
        self._watcher.watch(self.plugin_dir, Mask.CREATE | Mask.DELETE | Mask.MOVED_FROM
                            | Mask.MOVED_TO | Mask.ONLYDIR)
        self._watcher.start()
        self._registry.add_listener(self._on_snapshot)
        self._on_snapshot(self._registry.snapshot)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            servers = list(self.servers.values())
            self.servers.clear()
        self._watcher.stop()
        self.retry.stop()
        for server in servers:
            server.stop()

    def _register(self, server: PoolServer) -> None:
        """Register now; on failure retry with backoff (kubelet.sock re-creation also retries)."""
        if server.register():
            self.retry.succeeded(server.resource)
        else:
            self.retry.failed(server.resource)

    def _retry_register(self, resource: str) -> None:
        with self._lock:
            server = self.servers.get(resource)
            if server is not None and not self._stopped and not server.registered:
                log.info("retrying registration resource=%s", resource)
                self._register(server)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._metrics.observe_snapshot(snapshot)
        with self._lock:
            if self._stopped:
                return
            for name in sorted(set(self.servers) - set(snapshot.pools)):
                log.info("pool removed from config resource=%s", name)
                self.retry.cancel(name)
                self.servers.pop(name).stop()
            for name in sorted(set(snapshot.pools) - set(self.servers)):
                server = PoolServer(name, self.plugin_dir, self._registry, self._options,
                                    self._metrics, self.plugins_registry)
                server.start()
                self.servers[name] = server
                self._register(server)

    def _on_dir_events(self, events: Iterable[InotifyEvent]) -> None:
        with self._lock:
            if self._stopped:
                return
            by_socket = {s.socket_name: s for s in self.servers.values()}
            kubelet_back = False
            for event in events:
                gone = event.mask & (Mask.DELETE | Mask.MOVED_FROM)
                if gone and event.name in by_socket:
                    server = by_socket.pop(event.name)
                    log.info("socket deleted (kubelet restart?) resource=%s socket=%s",
                             server.resource, event.name)
                    self._metrics.restarts.labels(server.resource).inc()
                    server.stop()
                    server.start()
                    self._register(server)
                elif event.name == KUBELET_SOCKET and event.mask & (Mask.CREATE | Mask.MOVED_TO):
                    kubelet_back = True
            if kubelet_back and self.plugins_registry is None:
                log.info("kubelet.sock created; re-registering pools=%s", len(self.servers))
                for server in self.servers.values():
                    self._register(server)
