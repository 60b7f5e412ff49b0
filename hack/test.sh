#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh machine,
# builds the Kubernetes binaries, then type-checks, lints and runs every test (unit,
# integration against a real kube-apiserver, end to end on a real node) in two node:test
# processes side by side (hack/test-run.ts), inside network and mount namespaces of their own
# (hack/node/launch.ts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/lib.sh
began=$SECONDS

phase_start "install Debian and npm packages"
ensure_debian_packages
ensure_inotify_instances
ensure_go
ensure_npm_packages
phase_end

phase_start "build Kubernetes binaries (etcd, control plane, kubelet, kube-proxy, kubectl)"
bin="$(hack/build-k8s.sh)"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [[ -x "$bin/$b" ]] || { echo "missing $bin/$b" >&2; exit 1; }
done
export CONCIERGE_K8S_BIN="$bin"
"$bin/kubectl" version --client
phase_end

# The chart's tests run helm; it is built from the Go module proxy, which the tests cannot reach.
phase_start "build helm"
hack/build-helm.sh >/dev/null
phase_end

# The tests run where only the namespaces' own addresses are reachable, so everything they would
# fetch from npm (the arm64 runtime of the CLI's executable, the oldest Node its package supports)
# is fetched here, first.
phase_start "build the pinniped CLI and fetch the Node runtimes its tests use"
npm run -s build:cli
node_modules/.bin/node --input-type=module -e 'await (await import("./test/harness/pinniped-cli.ts")).oldestNode();'
phase_end

phase_start "type-check and lint"
npm run -s typecheck
npm run -s lint
phase_end

phase_start "tests"
npm test
phase_end

echo "all phases took $((SECONDS - began))s"
