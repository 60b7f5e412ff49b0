#!/usr/bin/env bash
# Builds etcd, the control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler), the node (kubelet, kube-proxy) and kubectl from the
# modules pinned in hack/k8s/go.mod into a cache keyed by those pins and the Go
# version, and prints the bin directory. A warm cache returns at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
src="$here/k8s"
key="$(cat "$src/go.mod" "$src/go.sum" "$src/etcd/main.go" "$0" <(go version) | sha256sum | cut -c1-16)"
cache="${CONCIERGE_K8S_CACHE:-$root/.cache/k8s}"
bin="$cache/$key/bin"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

built() {
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
if built; then
  echo "$bin"
  exit 0
fi

# Two runs that need the same build (parallel test runs, several clones sharing a cache) take
# turns: the second finds the first one's result.
mkdir -p "$cache"
exec 9>"$cache/$key.lock"
flock 9
if built; then
  echo "$bin"
  exit 0
fi

start=$SECONDS
echo "building Kubernetes binaries ($key) into $bin; a cold build takes several minutes" >&2
tmp="$cache/$key/bin.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
(
  cd "$src"
  # -trimpath and no DWARF keep the binaries small; CGO off matches upstream release builds.
  export CGO_ENABLED=0
  # A module build is not stamped with its version (it reports v0.0.0-master+$Format:%H$,
  # which kubectl cannot parse), so stamp it the way upstream's release build does.
  k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  minor="$(cut -d. -f2 <<<"$k8s_version")"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  flags=(-trimpath "-ldflags=$ldflags")
  go build "${flags[@]}" -o "$tmp/etcd" ./etcd
  cmds=()
  for b in "${binaries[@]:1}"; do cmds+=("k8s.io/kubernetes/cmd/$b"); done
  go build "${flags[@]}" -o "$tmp/" "${cmds[@]}"
) >&2
for b in "${binaries[@]}"; do
  [[ -x "$tmp/$b" ]] || { echo "build-k8s: $b was not produced" >&2; exit 1; }
done
rm -rf "$bin"
mv "$tmp" "$bin"
echo "built Kubernetes binaries in $((SECONDS - start))s" >&2
echo "$bin"
