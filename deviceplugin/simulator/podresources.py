"""pod-resources v1 ``PodResourcesLister`` served from the simulator's allocations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc

from deviceplugin.api.podresources.v1 import api_pb2 as pr
from deviceplugin.api.podresources.v1 import api_pb2_grpc as pr_grpc


class PodResourcesServicer(pr_grpc.PodResourcesListerServicer):
    def __init__(self, pods: Callable[[], Sequence[pr.PodResources]],
                 allocatable: Callable[[], Sequence[pr.ContainerDevices]]) -> None:
        self._pods = pods
        self._allocatable = allocatable

    def List(self, request: pr.ListPodResourcesRequest, context: grpc.ServicerContext
             ) -> pr.ListPodResourcesResponse:
        return pr.ListPodResourcesResponse(pod_resources=list(self._pods()))

    def GetAllocatableResources(self, request: pr.AllocatableResourcesRequest,
                                context: grpc.ServicerContext
                                ) -> pr.AllocatableResourcesResponse:
        return pr.AllocatableResourcesResponse(devices=list(self._allocatable()))

    def Get(self, request: pr.GetPodResourcesRequest, context: grpc.ServicerContext
            ) -> pr.GetPodResourcesResponse:
        for pod in self._pods():
            if pod.name == request.pod_name and pod.namespace == request.pod_namespace:
                return pr.GetPodResourcesResponse(pod_resources=pod)
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f"pod {request.pod_namespace}/{request.pod_name} not found")
        raise AssertionError("unreachable")
