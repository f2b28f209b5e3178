#!/usr/bin/env bash
# The main job: set-up, then the demo on an emulated SR-IOV host. Arguments go to `sriovctl demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/setup.sh
exec .venv/bin/sriovctl demo "$@"
