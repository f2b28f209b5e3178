#!/usr/bin/env bash
# The whole test suite: set-up, lint (ruff) and type check (mypy) of the whole tree (config in
# pyproject.toml), then unit + integration (root, real netns) tests on this kernel, then the VM
# testbed tier (real SR-IOV kernel) when hack/vm/test.sh is present.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; treating as failure" >&2
  exit 1
fi
if [ "$rc" -eq 0 ] && [ -x hack/vm/test.sh ] && [ "${SKIP_VM:-0}" != "1" ] && [ "$#" -eq 0 ]; then
  ./hack/vm/test.sh || rc=$?
fi
exit "$rc"
