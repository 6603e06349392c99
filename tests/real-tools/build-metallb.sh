#!/usr/bin/env bash
# Builds MetalLB's controller at every version metallb.env pairs with a plan, from the Go module
# proxy, into a cache of its own and prints that cache's directory:
#   bin/metallb-controller-<version>   the controller (go.universe.tf/metallb/controller)
#   crds/<version>/*.yaml              that release's CRDs (config/crd/bases of the same module)
# Apart from build-tools.sh on purpose: its key hashes metallb.env, this script and the Go version,
# not the Istio and Kubernetes pins, so each cache is rebuilt only when its own inputs change.
# Any version that cannot be built is an error (exit 1), never a skip.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=SCRIPTDIR/metallb.env
source "$here/metallb.env"

die() {
  echo "real tools: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "go is not installed: the MetalLB controller is built with Go"

cache_root="${MESHPLAN_REAL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshplan-real-tools}"
key="$({ cat "$here/metallb.env" "$here/build-metallb.sh"; go version; } | sha256sum | cut -c1-16)"
# Under metallb/, beside build-tools.sh's <key> directories and apart from them.
dir="$cache_root/metallb/$key"
if [ -f "$dir/complete" ]; then
  echo "$dir"
  exit 0
fi

# Go caches of its own (not build-tools.sh's go-mod and go-build, which that script removes when
# it finishes), removed once the build is done.
export GOMODCACHE="$cache_root/metallb/go-mod" GOCACHE="$cache_root/metallb/go-build"
export GOFLAGS="-trimpath -modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/crds"
log="$dir/build.log"

# The distinct versions the pairs name, in order.
versions() {
  local pair
  for pair in $METALLB_PAIRS; do
    echo "${pair#*=}"
  done | sort -uV
}

build_controller() {
  local version="$1" json mdir
  echo "real tools: building MetalLB's controller ($METALLB_MODULE@$version)" >&2
  json="$(go mod download -json "$METALLB_MODULE@$version" 2>>"$log")" ||
    die "the Go module proxy did not serve $METALLB_MODULE@$version (log: $log)"
  mdir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")"
  [ -d "$mdir/controller" ] || die "no controller/ in $METALLB_MODULE@$version"
  # The module's internal/version carries the release number itself; nothing to stamp.
  if ! (cd "$mdir" && nice -n 10 go build -ldflags "-s -w" -o "$dir/bin/metallb-controller-$version" ./controller) >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "could not build MetalLB's controller $version (full log: $log)"
  fi
  mkdir -p "$dir/crds/$version"
  cp "$mdir"/config/crd/bases/*.yaml "$dir/crds/$version/" ||
    die "no CRDs in $METALLB_MODULE@$version (config/crd/bases)"
  chmod -R u+w "$dir/crds/$version"
}

echo "real tools: building into $dir (first run only; log: $log)" >&2
for version in $(versions); do
  build_controller "$version"
done
echo "peak disk: $(du -sh "$cache_root/metallb" | cut -f1)" >>"$log"
if [ -z "${MESHPLAN_REAL_TOOLS_KEEP_GO_CACHES:-}" ]; then
  go clean -modcache >>"$log" 2>&1 || true
  rm -rf "$GOCACHE"
fi
touch "$dir/complete"
echo "$dir"
