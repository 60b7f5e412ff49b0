#!/usr/bin/env bash
# Writes pins/<minor>.mod and pins/<minor>.sum for one Kubernetes release, e.g.
# `hack/k8s/pin.sh 1.37.2`. k8s.io/kubernetes requires its staging modules (k8s.io/api,
# k8s.io/client-go, ...) as v0.0.0 and replaces them with ./staging paths that exist only in its
# own tree; the set of staging modules changes between minors, so the replace lines are read
# from that release's own go.mod and pointed at the matching v0.<minor>.<patch> tags. etcd is
# pinned to the server version that release itself requires, and the go line is the release's.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${1:?usage: pin.sh 1.MINOR.PATCH}"
[[ $version =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || { echo "pin.sh: not a release: $version" >&2; exit 1; }
minor="1.${BASH_REMATCH[1]}"
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
source "$here/toolchain.sh"

upstream="$(cd "$here" && go mod download -json "k8s.io/kubernetes@v$version" | sed -nE 's/^\t"GoMod": "(.*)",?$/\1/p')"
[[ -f $upstream ]] || { echo "pin.sh: no go.mod for k8s.io/kubernetes@v$version" >&2; exit 1; }
go_line="$(grep -m1 -E '^go [0-9.]+$' "$upstream")"
etcd="$(grep -m1 -E '^\s+go\.etcd\.io/etcd/server/v3 v' "$upstream" | awk '{print $2}')"
staging=($(sed -nE 's#^\s+(k8s\.io/[a-z0-9-]+) => \./staging/src/.*#\1#p' "$upstream"))
((${#staging[@]} > 0)) || { echo "pin.sh: no staging replace lines in $upstream" >&2; exit 1; }

# The Go module proxy here does not serve every staging module at every patch (k8s.io/kube-proxy
# v0.31.14 is refused, for one): such a module takes the nearest served patch of the same minor,
# the newest older one first, and the pin says so in a comment.
served() { go mod download "$1@$2" >/dev/null 2>&1; }
nearest() {
  local m="$1" want="$2" listed older newer v
  listed="$(go list -m -versions "$m" 2>/dev/null | tr ' ' '\n' | grep -F "${want%.*}." || true)"
  older="$(printf '%s\n' $listed "$want" | sort -Vu | sed "/^$want\$/,\$d" | tac)"
  newer="$(printf '%s\n' $listed "$want" | sort -Vu | sed "1,/^$want\$/d")"
  for v in $older $newer; do
    if served "$m" "$v"; then
      echo "$v"
      return 0
    fi
  done
  return 1
}
replaces=()
notes=()
for m in "${staging[@]}"; do
  v="$staging_version"
  if ! served "$m" "$v"; then
    if v="$(nearest "$m" "$staging_version")"; then
      notes+=("// $m $staging_version is not served by the Go module proxy; $v is the nearest that is.")
    else
      # Such as k8s.io/sample-apiserver: required, but never imported by what is built, so
      # never fetched; go mod tidy below fails if a build ever needs it.
      v="$staging_version"
      notes+=("// No $m ${staging_version%.*}.x is served by the Go module proxy; nothing built imports it.")
    fi
  fi
  replaces+=("	$m => $m $v")
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
{
  echo "// Kubernetes $version and the etcd it requires; written by hack/k8s/pin.sh, do not edit."
  for note in "${notes[@]}"; do echo "$note"; done
  echo "module concierge.local/hack/k8s"
  echo
  echo "$go_line"
  echo
  echo "require ("
  echo "	go.etcd.io/etcd/server/v3 $etcd"
  echo "	k8s.io/kubernetes v$version"
  echo ")"
  echo
  echo "replace ("
  printf '%s\n' "${replaces[@]}"
  echo ")"
} >"$tmp/go.mod"
cp "$here/tools.go" "$tmp/"
mkdir "$tmp/etcd"
cp "$here/etcd/main.go" "$tmp/etcd/"
(cd "$tmp" && go_for_pin mod tidy)
cp "$tmp/go.mod" "$here/pins/$minor.mod"
cp "$tmp/go.sum" "$here/pins/$minor.sum"
echo "pinned Kubernetes $version in hack/k8s/pins/$minor.mod"
