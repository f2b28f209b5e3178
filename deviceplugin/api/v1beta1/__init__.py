"""Generated kubelet API stubs (see hack/gen-protos.sh)."""
