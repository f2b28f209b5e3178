"""``python -m deviceplugin.simulator --dir DIR``: run a kubelet simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from deviceplugin.simulator.kubelet import KubeletSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deviceplugin.simulator",
                                     description="Simulated kubelet for device plugins.")
    parser.add_argument("--dir", type=Path, required=True,
                        help="device-plugin dir (kubelet.sock is served here)")
    parser.add_argument("--pod-resources-socket", type=Path, default=None,
                        help="pod-resources socket (default: DIR/../pod-resources/kubelet.sock)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with KubeletSimulator(args.dir, args.pod_resources_socket):
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
