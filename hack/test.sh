#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh machine,
# builds the local control plane's binaries, then type-checks, lints and runs every
# test (unit and integration against a real kube-apiserver) in one node:test process.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/lib.sh
began=$SECONDS

phase_start "install Debian and npm packages"
ensure_debian_packages
ensure_go
ensure_npm_packages
phase_end

phase_start "build Kubernetes binaries (etcd, kube-apiserver, kube-controller-manager, kubectl)"
bin="$(hack/build-k8s.sh)"
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x "$bin/$b" ]] || { echo "missing $bin/$b" >&2; exit 1; }
done
export CONCIERGE_K8S_BIN="$bin"
"$bin/kubectl" version --client
phase_end

phase_start "type-check and lint"
npm run -s typecheck
npm run -s lint
phase_end

phase_start "tests"
npm test
phase_end

echo "all phases took $((SECONDS - began))s"
