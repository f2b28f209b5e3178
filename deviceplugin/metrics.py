"""Prometheus metrics of the device plugin, on their own registry (never the global one)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from deviceplugin.registry import Snapshot

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.capacity = Gauge("sriov_dp_pool_capacity", "VFs advertised per resource",
                              ["resource"], registry=r)
        self.healthy = Gauge("sriov_dp_pool_healthy", "Healthy VFs per resource",
                             ["resource"], registry=r)
        self.allocated = Gauge("sriov_dp_pool_allocated",
                               "Distinct VFs handed out by Allocate since start",
                               ["resource"], registry=r)
        self.allocate_seconds = Histogram(
            "sriov_dp_allocate_seconds", "Allocate RPC latency", ["resource"], registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
        self.registrations = Counter("sriov_dp_registrations_total",
                                     "Successful Register calls to kubelet", ["resource"],
                                     registry=r)
        self.registration_failures = Counter(
            "sriov_dp_registration_failures_total",
            "Failed Register calls to kubelet (retried with backoff)", ["resource"], registry=r)
        self.watcher_status = Counter(
            "sriov_dp_plugin_watcher_status_total",
            "NotifyRegistrationStatus calls from kubelet's plugin watcher",
            ["resource", "registered"], registry=r)
        self.restarts = Counter("sriov_dp_server_restarts_total",
                                "gRPC server restarts (kubelet restart detected)", ["resource"],
                                registry=r)
        self.config_reload_failures = Counter(
            "sriov_dp_config_reload_failures_total",
            "Config reloads rejected as invalid (previous pools kept)", registry=r)
        self.config_valid = Gauge("sriov_dp_config_valid",
                                  "1 if the last config read was valid", registry=r)
        self._allocated_ids: dict[str, set[str]] = {}

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        for name, pool in snapshot.pools.items():
            self.capacity.labels(name).set(len(pool.devices))
            self.healthy.labels(name).set(sum(1 for d in pool.devices if d.healthy))

    def observe_allocation(self, resource: str, ids: list[str], seconds: float) -> None:
        seen = self._allocated_ids.setdefault(resource, set())
        seen.update(ids)
        self.allocated.labels(resource).set(len(seen))
        self.allocate_seconds.labels(resource).observe(seconds)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
        log.info("metrics listening port=%s", port)
