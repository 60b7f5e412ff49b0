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
  command -v go >/dev/null || missing+=(golang-go)
  if ((${#missing[@]} > 0)); then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

# npm packages, including the Node 24 binary that `npm run` puts first on PATH.
ensure_npm_packages() {
  if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
    npm ci --no-audit --no-fund
  fi
}
