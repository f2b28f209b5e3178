"""A kubelet simulator for device plugins: Registration, ListAndWatch consumer,
kubelet-style allocation, and the pod-resources v1 API. See ``kubelet.py``."""

from deviceplugin.simulator.kubelet import Allocation, KubeletSimulator, SimulatorError

__all__ = ["Allocation", "KubeletSimulator", "SimulatorError"]
