#!/usr/bin/env bash
# Builds etcd, the control plane (kube-apiserver, kube-controller-manager, kube-scheduler), the
# node (kubelet, kube-proxy) and kubectl of one Kubernetes release into a cache directory of its
# own, and prints the bin directory. The release is the minor in hack/k8s/default unless
# CONCIERGE_K8S_VERSION names another one listed in hack/k8s/versions (a minor such as 1.30, or
# its full version).
# The modules come from hack/k8s/pins/<minor>.mod and .sum (see hack/k8s/pin.sh); the cache key
# hashes them, the sources and the Go that builds them, so a warm cache returns at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
src="$here/k8s"
source "$src/toolchain.sh"

listed=($(grep -vE '^\s*(#|$)' "$src/versions"))
want="${CONCIERGE_K8S_VERSION:-$(cat "$src/default")}"
want="${want#v}"
version=""
for v in "${listed[@]}"; do
  if [[ $v == "$want" || ${v%.*} == "$want" ]]; then version="$v"; fi
done
if [[ -z $version ]]; then
  echo "build-k8s: Kubernetes $want is not in hack/k8s/versions (${listed[*]})" >&2
  exit 1
fi
minor="${version%.*}"
modfile="$src/pins/$minor.mod"
use_go_for "$modfile"

# Bump when the build recipe below changes what it produces.
recipe=1
# Comments in the pin do not change what is built.
key="$(cat <(grep -v "^//" "$modfile") "${modfile%.mod}.sum" "$src/tools.go" "$src/etcd/main.go" \
  <(echo "recipe $recipe") <(go version) | sha256sum | cut -c1-16)"
cache="${CONCIERGE_K8S_CACHE:-$root/.cache/k8s}"
bin="$cache/v$version-$key/bin"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

built() {
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
if built; then
  echo "$bin"
  exit 0
fi

# One build at a time per cache: a build takes both cores of a small machine for minutes, and
# two runs that need the same build (parallel test runs, several clones sharing a cache) take
# turns, the second finding the first one's result.
mkdir -p "$cache"
exec 9>"$cache/build.lock"
# The wait ends as soon as this release is built: a run that needs a release already built does not
# sit behind another release's build of an hour.
until flock -w 10 9; do
  if built; then
    echo "$bin"
    exit 0
  fi
done
if built; then
  echo "$bin"
  exit 0
fi

start=$SECONDS
echo "building Kubernetes $version ($key, $(go env GOVERSION)) into $bin; a cold build takes several minutes" >&2
tmp="$(dirname "$bin")/bin.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
# The lock is not inherited: a compiler left running by a killed build would hold it until it ends.
(
  cd "$src"
  # -trimpath and no DWARF keep the binaries small; CGO off matches upstream release builds.
  export CGO_ENABLED=0
  # A module build is not stamped with its version (it reports v0.0.0-master+$Format:%H$,
  # which kubectl cannot parse), so stamp it the way upstream's release build does.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor#1.}"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  flags=(-modfile "$modfile" -trimpath "-ldflags=$ldflags")
  go build "${flags[@]}" -o "$tmp/etcd" ./etcd
  cmds=()
  for b in "${binaries[@]:1}"; do cmds+=("k8s.io/kubernetes/cmd/$b"); done
  go build "${flags[@]}" -o "$tmp/" "${cmds[@]}"
) 9>&- >&2
for b in "${binaries[@]}"; do
  [[ -x "$tmp/$b" ]] || { echo "build-k8s: $b was not produced" >&2; exit 1; }
done
rm -rf "$bin"
mv "$tmp" "$bin"
echo "built Kubernetes $version in $((SECONDS - start))s" >&2
echo "$bin"
