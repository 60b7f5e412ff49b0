#!/usr/bin/env bash
# The README's first command: installs what the demo needs on a fresh machine, then
# runs it (hack/demo.ts). It starts a real local control plane, shows the Concierge
# at work, and cleans up after itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source hack/lib.sh

phase_start "install Debian and npm packages"
ensure_debian_packages
ensure_inotify_instances
ensure_go
ensure_npm_packages
phase_end

phase_start "build Kubernetes binaries (cached after the first run)"
CONCIERGE_K8S_BIN="$(hack/build-k8s.sh)"
export CONCIERGE_K8S_BIN
phase_end

exec npm run -s demo
