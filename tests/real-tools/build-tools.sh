#!/usr/bin/env bash
# Builds the pinned tools (versions.env) from the Go module proxy into a cache outside the repo and
# prints that cache's directory: bin/ has istioctl, pilot-discovery, helm, kube-apiserver,
# kube-controller-manager, kubectl, etcd and our xds-probe (xds-probe/main.go);
# charts/ has Istio's Helm charts from the same istio module. A finished cache is reused as it is;
# its key hashes the pins, this script, the probe's source and the Go version, so changing any of them rebuilds.
# Any tool that cannot be built is an error (exit 1), never a skip.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/real-tools/versions.env
source "$here/versions.env"

die() {
  echo "real tools: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "go is not installed: the real tools are built with Go (1.25 or newer)"

cache_root="${MESHPLAN_REAL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshplan-real-tools}"
key="$({ cat "$here/versions.env" "$here/build-tools.sh" "$here/xds-probe/main.go"; go version; } | sha256sum | cut -c1-16)"
dir="$cache_root/$key"
if [ -f "$dir/complete" ]; then
  echo "$dir"
  exit 0
fi

# Module and build caches live beside the tools, not in the user's Go caches, so a cold run is
# really cold and the disk it takes is ours to measure and remove. Both go once the build is done.
export GOMODCACHE="$cache_root/go-mod" GOCACHE="$cache_root/go-build"
export GOFLAGS="-trimpath -modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/src"
log="$dir/build.log"

# Runs one build step quietly; on failure shows the end of its log and stops.
step() {
  local what="$1"
  shift
  echo "real tools: building $what" >&2
  if ! "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "could not build $what (full log: $log)"
  fi
}

# Downloads one module version and prints the directory it was unpacked to.
module_dir() {
  local json
  json="$(go mod download -json "$1@$2" 2>>"$log")" || die "the Go module proxy did not serve $1@$2 (log: $log)"
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json"
}

# build_in_module DIR OUT LDFLAGS PKG...: go build inside DIR's module.
build_in_module() {
  local dir_="$1" out="$2" ldflags="$3"
  shift 3
  (cd "$dir_" && nice -n 10 go build -ldflags "$ldflags" -o "$out" "$@")
}

# kube-controller-manager runs only its service-account token controller: istioctl
# create-remote-secret waits for it to fill the reader's token Secret.
kube_commands=(kube-apiserver kube-controller-manager kubectl)

# The kubernetes module replaces its staging modules (k8s.io/api, ...) with local paths that are not
# in its module zip, so it is built from a module of ours that requires every one of them at the
# matching v0.x. The list comes from the kubernetes go.mod itself, not typed by hand.
write_kube_module() {
  local kdir="$1" src="$2" staging="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module meshplan.test/real-tools/kube"
    echo
    grep -m1 '^go ' "$kdir/go.mod"
    grep -m1 '^godebug ' "$kdir/go.mod" || true
    echo
    echo "require $KUBERNETES_MODULE $KUBERNETES_VERSION"
    echo
    echo "require ("
    sed -n 's/^[[:space:]]*\(k8s\.io\/[a-z0-9-]*\) => \.\/staging\/.*/\t\1 '"$staging"'/p' "$kdir/go.mod"
    echo ")"
    echo
    echo "tool ("
    printf '\t%s\n' "${kube_commands[@]/#/$KUBERNETES_MODULE/cmd/}"
    echo ")"
  } >"$src/go.mod"
}

# etcd's server module replaces its sibling modules with local paths too; require them at the
# same version instead.
write_etcd_module() {
  local src="$1" m
  {
    echo "module meshplan.test/real-tools/etcd"
    echo
    echo "go 1.24"
    echo
    echo "require ("
    for m in "$ETCD_MODULE" go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
      printf '\t%s %s\n' "$m" "$ETCD_VERSION"
    done
    echo ")"
    echo
    echo "tool $ETCD_MODULE"
  } >"$src/go.mod"
}

# Built from a copy of the istio module with xds-probe/ added as one of its packages, so the probe
# is compiled against exactly the module graph of the istiod it probes (go build -overlay may not
# add files under GOMODCACHE).
build_istio() {
  local idir src="$dir/src/istio"
  idir="$(module_dir "$ISTIO_MODULE" "$ISTIO_VERSION")"
  [ -d "$idir" ] || die "no directory for $ISTIO_MODULE@$ISTIO_VERSION"
  cp -R "$idir" "$src"
  chmod -R u+w "$src"
  mkdir -p "$src/meshplan-xds-probe"
  cp "$here/xds-probe/main.go" "$src/meshplan-xds-probe/"
  local v="$ISTIO_RELEASE-${ISTIO_VERSION##*-}"
  # One go build for all three: they share most packages.
  step "istioctl, pilot-discovery and xds-probe ($ISTIO_MODULE@$ISTIO_VERSION)" build_in_module "$src" "$dir/bin/" \
    "-s -w -X istio.io/istio/pkg/version.buildVersion=$v -X istio.io/istio/pkg/version.buildTag=$v" \
    ./istioctl/cmd/istioctl ./pilot/cmd/pilot-discovery ./meshplan-xds-probe
  mv "$dir/bin/meshplan-xds-probe" "$dir/bin/xds-probe"
  cp -R "$src/manifests/charts" "$dir/charts"
}

build_helm() {
  local hdir
  hdir="$(module_dir "$HELM_MODULE" "$HELM_VERSION")"
  [ -d "$hdir" ] || die "no directory for $HELM_MODULE@$HELM_VERSION"
  step "helm ($HELM_MODULE@$HELM_VERSION)" build_in_module "$hdir" "$dir/bin/helm" \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ./cmd/helm
}

build_kube() {
  local kdir src="$dir/src/kube" minor="${KUBERNETES_VERSION#v1.}"
  kdir="$(module_dir "$KUBERNETES_MODULE" "$KUBERNETES_VERSION")"
  [ -f "$kdir/go.mod" ] || die "no go.mod in $KUBERNETES_MODULE@$KUBERNETES_VERSION"
  mkdir -p "$src"
  write_kube_module "$kdir" "$src"
  local ld="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  step "Kubernetes (module graph)" bash -c "cd '$src' && go mod tidy"
  # One go build for all three: they share most packages, so it compiles them once.
  step "${kube_commands[*]} ($KUBERNETES_MODULE@$KUBERNETES_VERSION)" build_in_module "$src" "$dir/bin/" "$ld" \
    "${kube_commands[@]/#/$KUBERNETES_MODULE/cmd/}"
}

build_etcd() {
  local src="$dir/src/etcd"
  mkdir -p "$src"
  write_etcd_module "$src"
  step "etcd (module graph)" bash -c "cd '$src' && go mod tidy"
  step "etcd ($ETCD_MODULE@$ETCD_VERSION)" build_in_module "$src" "$dir/bin/etcd" "-s -w" "$ETCD_MODULE"
}

echo "real tools: building into $dir (first run only; log: $log)" >&2
build_etcd
build_helm
build_kube
build_istio
echo "peak disk: $(du -sh "$cache_root" | cut -f1)" >>"$log"
# The Go caches are only needed to build; drop them so the steady cache is the binaries and charts
# (MESHPLAN_REAL_TOOLS_KEEP_GO_CACHES=1 keeps them, for whoever changes the pins often).
if [ -z "${MESHPLAN_REAL_TOOLS_KEEP_GO_CACHES:-}" ]; then
  go clean -modcache >>"$log" 2>&1 || true
  rm -rf "$GOCACHE"
fi
rm -rf "$dir/src"
touch "$dir/complete"
echo "$dir"
