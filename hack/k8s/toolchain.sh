# Sourced by build-k8s.sh and pin.sh: which Go builds a pin. The machine's own Go when it is as
# new as the pin's go line; otherwise go1.27.3, which the go command fetches from the Go module
# proxy like a module (golang.org/toolchain) when GOTOOLCHAIN names it. No other Go can be
# fetched here, so that is the one newer toolchain the pins may need.
newer_go=go1.27.3

version_lt() {
  [[ $1 != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" == "$1" ]]
}

# Exports GOTOOLCHAIN for building with the given go.mod.
use_go_for() {
  local need have
  need="$(sed -nE 's/^go ([0-9.]+)$/\1/p' "$1" | head -1)"
  have="$(GOTOOLCHAIN=local go env GOVERSION)"
  have="${have#go}"
  if version_lt "$have" "$need"; then
    export GOTOOLCHAIN="$newer_go"
  else
    export GOTOOLCHAIN=local
  fi
}

# Runs go with the machine's Go, and again with the newer one when a module in the graph
# requires a newer Go than the machine has.
go_for_pin() {
  local out
  if out="$(GOTOOLCHAIN=local go "$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    return 0
  fi
  if grep -q 'requires go >=' <<<"$out"; then
    echo "a module needs a newer Go than $(GOTOOLCHAIN=local go env GOVERSION); using $newer_go" >&2
    GOTOOLCHAIN="$newer_go" go "$@"
    return
  fi
  printf '%s\n' "$out" >&2
  return 1
}
