#!/usr/bin/env bash
# Builds the helm command of the pinned release from the Go module proxy (no registry or release
# download here) into a cache directory keyed by version and Go, and prints the binary's path.
# The chart's tests (charts/concierge, test/integration/helm-*.test.ts) run it; they cannot reach
# the proxy, so hack/test.sh builds it in its set-up phase.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

# Helm 4, the current major release.
version=v4.3.2
cache="${CONCIERGE_HELM_CACHE:-$root/.cache/helm}"
# Bump when the build recipe below changes what it produces.
recipe=2
dir="$cache/$version-$(GOTOOLCHAIN=local go env GOVERSION)-$recipe"
bin="$dir/helm"
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi
# Tests only look (they cannot reach the proxy): a missing binary is an error that says what to run.
if [[ -n ${CONCIERGE_HELM_NO_BUILD:-} ]]; then
  echo "helm $version is not built in $cache: run hack/build-helm.sh (hack/test.sh does, in its set-up)" >&2
  exit 1
fi

# One build at a time per cache; a second run waits and finds the first one's result.
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi

start=$SECONDS
echo "building helm $version into $dir; a cold Go cache takes several minutes" >&2
rm -rf "$dir.partial"
mkdir -p "$dir.partial"
# Stamped with its version as upstream's release build does (a module build says "v4.3");
# -trimpath and no DWARF keep the binary small, CGO off as upstream's releases.
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$dir.partial" nice -n 10 \
  go install -trimpath -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
  "helm.sh/helm/v4/cmd/helm@$version" >&2
[[ -x $dir.partial/helm ]] || { echo "build-helm: helm was not produced" >&2; exit 1; }
rm -rf "$dir"
mv "$dir.partial" "$dir"
echo "built helm $version in $((SECONDS - start))s" >&2
echo "$bin"
