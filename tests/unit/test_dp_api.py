"""Our .proto files match kubelet's wire contract: package, full method names, field numbers."""

from __future__ import annotations

import pytest

from deviceplugin.api.pluginregistration import api_pb2 as reg
from deviceplugin.api.podresources.v1 import api_pb2 as pr
from deviceplugin.api.v1beta1 import api_pb2 as dp


@pytest.mark.parametrize(("module", "service", "method", "full"), [
    (dp, "Registration", "Register", "/v1beta1.Registration/Register"),
    (dp, "DevicePlugin", "GetDevicePluginOptions", "/v1beta1.DevicePlugin/GetDevicePluginOptions"),
    (dp, "DevicePlugin", "ListAndWatch", "/v1beta1.DevicePlugin/ListAndWatch"),
    (dp, "DevicePlugin", "GetPreferredAllocation", "/v1beta1.DevicePlugin/GetPreferredAllocation"),
    (dp, "DevicePlugin", "Allocate", "/v1beta1.DevicePlugin/Allocate"),
    (dp, "DevicePlugin", "PreStartContainer", "/v1beta1.DevicePlugin/PreStartContainer"),
    (reg, "Registration", "GetInfo", "/pluginregistration.Registration/GetInfo"),
    (reg, "Registration", "NotifyRegistrationStatus",
     "/pluginregistration.Registration/NotifyRegistrationStatus"),
    (pr, "PodResourcesLister", "List", "/v1.PodResourcesLister/List"),
    (pr, "PodResourcesLister", "GetAllocatableResources",
     "/v1.PodResourcesLister/GetAllocatableResources"),
    (pr, "PodResourcesLister", "Get", "/v1.PodResourcesLister/Get"),
])
def test_full_method_names(module, service, method, full) -> None:
    m = module.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    assert "/" + m.full_name.replace("." + method, "/" + method) == full


def test_list_and_watch_is_server_streaming() -> None:
    m = dp.DESCRIPTOR.services_by_name["DevicePlugin"].methods_by_name["ListAndWatch"]
    assert m.server_streaming and not m.client_streaming


def _fields(msg) -> dict[str, int]:
    return {f.name: f.number for f in msg.DESCRIPTOR.fields}


@pytest.mark.parametrize(("msg", "expected"), [
    (dp.DevicePluginOptions, {"pre_start_required": 1, "get_preferred_allocation_available": 2}),
    (dp.RegisterRequest, {"version": 1, "endpoint": 2, "resource_name": 3, "options": 4}),
    (dp.ListAndWatchResponse, {"devices": 1}),
    (dp.Device, {"ID": 1, "health": 2, "topology": 3}),
    (dp.TopologyInfo, {"nodes": 1}),
    (dp.NUMANode, {"ID": 1}),
    (dp.PreStartContainerRequest, {"devices_ids": 1}),
    (dp.ContainerPreferredAllocationRequest,
     {"available_deviceIDs": 1, "must_include_deviceIDs": 2, "allocation_size": 3}),
    (dp.PreferredAllocationRequest, {"container_requests": 1}),
    (dp.ContainerPreferredAllocationResponse, {"deviceIDs": 1}),
    (dp.AllocateRequest, {"container_requests": 1}),
    (dp.ContainerAllocateRequest, {"devices_ids": 1}),
    (dp.ContainerAllocateResponse,
     {"envs": 1, "mounts": 2, "devices": 3, "annotations": 4, "cdi_devices": 5}),
    (dp.Mount, {"container_path": 1, "host_path": 2, "read_only": 3}),
    (dp.DeviceSpec, {"container_path": 1, "host_path": 2, "permissions": 3}),
    (dp.CDIDevice, {"name": 1}),
    (reg.PluginInfo, {"type": 1, "name": 2, "endpoint": 3, "supported_versions": 4}),
    (reg.RegistrationStatus, {"plugin_registered": 1, "error": 2}),
    (pr.PodResources, {"name": 1, "namespace": 2, "containers": 3, "cpu_ids": 4, "memory": 5}),
    (pr.ContainerResources,
     {"name": 1, "devices": 2, "cpu_ids": 3, "memory": 4, "dynamic_resources": 5}),
    (pr.ContainerDevices, {"resource_name": 1, "device_ids": 2, "topology": 3}),
    (pr.AllocatableResourcesResponse, {"devices": 1, "cpu_ids": 2, "memory": 3}),
    (pr.DynamicResource, {"claim_name": 2, "claim_namespace": 3, "claim_resources": 4}),
    (pr.ClaimResource, {"cdi_devices": 1, "driver_name": 2, "pool_name": 3, "device_name": 4,
                        "share_id": 5}),
    (pr.GetPodResourcesRequest, {"pod_name": 1, "pod_namespace": 2}),
    (pr.GetPodResourcesResponse, {"pod_resources": 1}),
])
def test_field_numbers(msg, expected) -> None:
    assert _fields(msg) == expected


def test_packages() -> None:
    assert dp.DESCRIPTOR.package == "v1beta1"
    assert reg.DESCRIPTOR.package == "pluginregistration"
    assert pr.DESCRIPTOR.package == "v1"
