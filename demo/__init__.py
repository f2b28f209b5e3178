"""The end-to-end demo and the podman runtime harness (``sriovctl demo``).

This package is the top layer: it composes ``sriov`` (emulated host, inventory), the device
plugin (as a subprocess, driven by ``deviceplugin.simulator``) and the CNI plugin (installed as
the ``sriov`` shim, run by podman or by :mod:`demo.netns_runtime`). Nothing imports it.
"""
