#!/usr/bin/env bash
# The real consumers of meshplan's output check it: istioctl, helm, kube-apiserver, kubectl and
# MetalLB's controller, built once from the pins in versions.env (build-tools.sh) and metallb.env
# (build-metallb.sh). For every shipped plan and ok fixture it builds the tree, then
#   1. istioctl manifest generate -f on every IstioOperator file, every image it renders listed in
#      the tree's images.txt;
#   2. istioctl validate -f on every file with Istio resources, istioctl analyze --use-kube=false
#      over each cluster's kubectl bundle (errors fail, warnings are listed);
#   3. helm template of every chart with every generated values file, as install.sh calls it,
#      every image it renders listed in the tree's images.txt and no retired Istio location;
#   4. one etcd, and per cluster a kube-apiserver (plus kube-controller-manager for service account
#      tokens) on loopback with the cluster's planned service range, a kubeconfig with the plan's
#      context names, the MetalLB and Gateway API CRDs, MetalLB's controller where the cluster has
#      pools, then the generated install.sh with the real tools (stubs only where pods or a cloud
#      are needed, see README.md), then `kubectl get` of every object each bundle declares and
#      MetalLB's addresses on every LoadBalancer Service;
#   5. istiod itself (istiod.py);
#   6. the tree's doctor.sh on the installed servers (live-doctor.sh);
#   7. with [mesh.istio] revision: the revisioned control plane and the default revision tag that
#      install.sh set with the real istioctl (revision.py);
#   8. with [mesh.istio] revision, the canary: on new API servers, the plan without its revision
#      installed, then the revision's control plane beside it, the default tag moved with the
#      tree's own istioctl steps, and both revisions' pilot-discovery serving at once;
#   9. for a plan with [mesh.trust] phases: `meshplan check --certs` proves every phase, and
#      istiod started with each phase's cacerts publishes exactly that phase's roots (trust.py).
#  10. every shipped plan bumped one minor: `meshplan upgrade` and its upgrade.sh, phase by
#      phase, on the servers the plan was installed on (revision.py between the phases).
# A plan that is the same as another of the run apart from [mesh.gitops], with the same tree apart
# from gitops/, is built and then proven by that twin's checks 1-10 (twins.py: no check reads
# either, and a shipped plan always runs its own).
# Exit 1 on any failure, including a tool that cannot be built. Usage: run.sh [PLAN.toml...]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=SCRIPTDIR/metallb.env
source "$here/metallb.env"
if [ -n "${MESHPLAN_REAL_TOOLS_TRACE:-}" ]; then
  PS4='+ ${EPOCHREALTIME} '
  set -x
fi
repo="$(cd "$here/../.." && pwd)"

files_checked=0 objects_applied=0 failures=0 istiod_plans=0 twin_plans=0
# Plans whose checks a twin of theirs runs (twins.py): the plan's index -> the twin's index.
declare -A twin_of=()
# MetalLB controller version -> how many plans it ran for.
declare -A metallb_plans=()
pids=()
# The plan jobs still running: PID -> its port slot (run_plans).
declare -A slot_of=()
work=""
# Set inside a plan's job (a background subshell): its directory and its block of ports.
job="" slot=""
# Set while check_on_servers runs for the canary (check 8): the revisioned plan and its tree.
canary_plan="" canary_tree=""

# kill_tree PID: PID and everything it started, children first seen, all with SIGKILL (a job's
# bash would only act on a gentler signal once its current command, perhaps a 60 s wait, ended).
kill_tree() {
  local child
  kill -STOP "$1" 2>/dev/null || return 0
  for child in $(pgrep -P "$1"); do
    kill_tree "$child"
  done
  kill -KILL "$1" 2>/dev/null || true
}

cleanup() {
  local pid
  # Jobs still running (a stopped run): their scripts and clients first, then every server and
  # istiod they started (each names $work in its arguments), then etcd.
  for pid in "${!slot_of[@]}"; do
    kill_tree "$pid"
    wait "$pid" 2>/dev/null || true
  done
  [ -z "$work" ] || pkill -KILL -f -- "$work/" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=() slot_of=()
  if [ -n "$work" ] && [ -z "${MESHPLAN_REAL_TOOLS_KEEP:-}" ]; then
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

summary() {
  local v used=()
  for v in $(printf '%s\n' "${!metallb_plans[@]}" | sort -V); do
    used+=("$v (${metallb_plans[$v]} plans)")
  done
  echo "real tools: istioctl ${istioctl_version:-?}, helm ${helm_version:-?}, kube-apiserver ${kube_version:-?}, MetalLB controller $(IFS=/ && echo "${used[*]:-none}"): $files_checked files checked, $objects_applied objects applied, $failures failures"
}

# A failure that ends the run, or inside a plan's job, that plan.
fatal() {
  echo "real tools: $*" >&2
  failures=$((failures + 1))
  [ -n "$job" ] || summary
  exit 1
}

# fail WHAT LOG: one failure, with the end of the tool's output.
fail() {
  failures=$((failures + 1))
  echo "FAIL $1"
  if [ -n "${2:-}" ] && [ -s "$2" ]; then
    tail -n 30 "$2" | sed 's/^/    /'
  fi
}

# check WHAT CMD...: runs CMD with its output in a log; a non-zero exit is a failure.
check() {
  local what="$1" log="$job/check.log"
  shift
  if "$@" >"$log" 2>&1; then
    return 0
  fi
  fail "$what" "$log"
  return 1
}

# ---------------------------------------------------------------------------------------------
# Tools

setup_tools() {
  local dir pair
  dir="$(bash "$here/build-tools.sh")" || fatal "a tool could not be built (see above)"
  metallb_dir="$(bash "$here/build-metallb.sh")" || fatal "MetalLB's controller could not be built (see above)"
  export MESHPLAN_REAL_TOOLS_BIN="$dir/bin" MESHPLAN_REAL_TOOLS_CHARTS="$dir/charts"
  # The stubs come first and call the real tools by path; everything else finds the real ones.
  export PATH="$here/stubs:$dir/bin:$PATH"
  istioctl_version="$(istioctl version --remote=false 2>/dev/null | sed -n 's/^client version: //p')"
  helm_version="$(helm version --template '{{.Version}}')"
  kube_version="$(kube-apiserver --version | sed 's/^Kubernetes //')"
  python3 -c 'import tomllib' 2>/dev/null || fatal "check 5 (istiod.py) needs python3 3.11 or newer (tomllib)"
  use_python_interpreter
  local tool
  for tool in istioctl pilot-discovery xds-probe helm kube-apiserver kube-controller-manager kubectl etcd; do
    [ -x "$dir/bin/$tool" ] || fatal "$tool is missing from $dir/bin"
  done
  for pair in $METALLB_PAIRS; do
    [ -x "$metallb_dir/bin/metallb-controller-${pair#*=}" ] || fatal "metallb-controller-${pair#*=} is missing from $metallb_dir/bin"
  done
  [ -z "${MESHPLAN_REAL_TOOLS_PROFILE:-}" ] || profile_tools "$dir/bin"
}

# The python3 on PATH, called as its interpreter: where python3 is a version manager's shim
# (pyenv's is a bash script that runs several more processes to pick the version: 0.08 s of CPU
# a call against 0.03 s for the interpreter alone, and a plan calls python3 about 33 times), the
# interpreter it picks is linked as $work/python-bin/python3, which goes on PATH after the stubs.
# The same interpreter runs every script, from run.sh, the stubs and live-doctor.sh alike.
use_python_interpreter() {
  local interpreter
  interpreter="$(python3 -c 'import sys; print(sys.executable)')" || interpreter=""
  [ -x "$interpreter" ] || fatal "python3 does not name its interpreter (sys.executable)"
  mkdir -p "$work/python-bin"
  ln -s "$interpreter" "$work/python-bin/python3"
  export PATH="$here/stubs:$work/python-bin:${PATH#"$here/stubs:"}"
}

# MESHPLAN_REAL_TOOLS_PROFILE=1: where the time goes (docs/performance.md). Every kubectl, istioctl
# and helm run, whoever starts it, goes through a wrapper that logs its check and CPU to the
# job's profile.log; each check's wall time and the CPU of everything it waited for are logged
# by `phase`. Printed per plan, and summed over the run at its end.
profile_tools() {
  local real="$1" bin="$work/profile-bin" tool
  mkdir -p "$bin"
  for tool in "$real"/*; do
    ln -s "$tool" "$bin/${tool##*/}"
  done
  for tool in kubectl istioctl helm; do
    rm "$bin/$tool"
    cat >"$bin/$tool" <<WRAPPER
#!/usr/bin/env bash
exec /usr/bin/time -a -o "\${MESHPLAN_REAL_TOOLS_JOB:-$work}/profile.log" -f "\${MESHPLAN_REAL_TOOLS_PHASE:-?} $tool %U %S" "$real/$tool" "\$@"
WRAPPER
    chmod +x "$bin/$tool"
  done
  export MESHPLAN_REAL_TOOLS_BIN="$bin" PATH="$here/stubs:$bin:$PATH"
}

# phase NAME: profiling only; NAME's wall time, the CPU of what it waited for (bash's `times`
# for children, so the servers' CPU counts in the phase that stops them) and the CPU the running
# servers (API servers, controller-managers, MetalLB) used meanwhile start here.
phase() {
  [ -n "${MESHPLAN_REAL_TOOLS_PROFILE:-}" ] || return 0
  local now="$EPOCHREALTIME" u s pid stat ticks=0
  times >"$job/times"
  { read -r _ && read -r u s; } <"$job/times"
  for pid in "${pids[@]}"; do
    [ "$pid" != "${etcd_pid:-}" ] || continue
    read -r stat 2>/dev/null <"/proc/$pid/stat" || continue
    read -r -a stat <<<"${stat##*) }"
    ticks=$((ticks + stat[11] + stat[12]))
  done
  [ -z "${phase_name:-}" ] ||
    echo "$phase_name wall $(seconds "$phase_t0" "$now") $phase_u0 $phase_s0 $u $s $(cpu_seconds $((ticks - phase_ticks)))" >>"$job/profile.log"
  phase_name="$1" phase_t0="$now" phase_u0="$u" phase_s0="$s" phase_ticks="$ticks"
  export MESHPLAN_REAL_TOOLS_PHASE="$1"
}

# profile_report LOG...: per phase, wall, CPU of what it waited for, and each tool's calls and CPU.
profile_report() {
  awk '
    function sec(t, m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
    $2 == "wall" { order[$1] = order[$1] ? order[$1] : ++n; names[order[$1]] = $1
      wall[$1] += $3; cpu[$1] += sec($6) - sec($4) + sec($7) - sec($5); srv[$1] += ($8 > 0 ? $8 : 0); next }
    NF == 4 { calls[$1 "/" $2]++; tcpu[$1 "/" $2] += $3 + $4; tools[$2] = 1 }
    END {
      for (i = 1; i <= n; i++) {
        p = names[i]; line = sprintf("profile %-16s wall %7.1f s, cpu %7.1f s, servers meanwhile %6.1f s", p, wall[p], cpu[p], srv[p])
        for (t in tools) if (calls[p "/" t]) line = line sprintf("; %s %d calls %.1f s", t, calls[p "/" t], tcpu[p "/" t])
        print line; W += wall[p]; C += cpu[p]; S += srv[p]
      }
      for (t in tools) { k = 0; c = 0; for (x in calls) if (x ~ ("/" t "$")) { k += calls[x]; c += tcpu[x] } tl = tl sprintf("; %s %d calls %.1f s", t, k, c) }
      printf "profile %-16s wall %7.1f s, cpu %7.1f s, servers meanwhile %6.1f s%s\n", "(all)", W, C, S, tl
    }' "$@"
}

build_meshplan() {
  if [ -n "${MESHPLAN_BIN:-}" ]; then
    meshplan="$MESHPLAN_BIN"
    return
  fi
  (cd "$repo" && cargo build --release --locked --quiet) || fatal "cargo build failed"
  meshplan="${CARGO_TARGET_DIR:-$repo/target}/release/meshplan"
}

# ---------------------------------------------------------------------------------------------
# Reading the generated tree (no knowledge of the plan format: only what meshplan wrote)

# Cluster directories of a tree: those with a scripts/install.sh.
clusters_of() {
  local f
  for f in "$1"/*/scripts/install.sh; do
    [ -f "$f" ] && basename "$(dirname "$(dirname "$f")")"
  done
}

# The kubectl context a cluster's scripts use (their `context=` line, shell-quoted).
context_of() {
  local line
  line="$(grep -m1 '^context=' "$1/$2/scripts/install.sh")" || return 1
  bash -c "$line"'; printf "%s" "$context"'
}

# The files of a cluster's kustomization, in its order.
bundle_files() {
  sed -n 's/^[[:space:]]*-[[:space:]]*\([^[:space:]#]*\.yaml\)[[:space:]]*$/\1/p' "$1/kustomization.yaml"
}

count_docs() {
  grep -c '^kind:' "$1" || true
}

# ---------------------------------------------------------------------------------------------
# Checks 1-3: the files alone

check_istio_operators() {
  local tree="$1" f
  for f in "$tree"/*/istio/*.yaml; do
    [ -f "$f" ] || continue
    files_checked=$((files_checked + 1))
    check "istioctl manifest generate -f ${f#"$tree"/}" manifest_generate "$f" "$tree/images.txt" || true
  done
}

# istioctl's rendering of an IstioOperator, whose images must all be in the tree's images.txt.
# Kept for the whole run under the file's content hash: for the install's `istioctl install -f
# FILE` stand-in (stubs/istioctl), which applies it instead of running the same istioctl on the
# same file again, and for a byte-identical file of another plan (20 of the 100 IstioOperator
# files of a full run), whose rendering by the same istioctl is the same. Its images are checked
# against each tree's own images.txt.
manifest_generate() {
  local rendered partial
  rendered="$MESHPLAN_REAL_TOOLS_RENDERED/$(sha256sum <"$1" | cut -d' ' -f1).yaml"
  if [ ! -f "$rendered" ]; then
    # A name of this job's own: another job may be rendering the same content.
    partial="$rendered.$BASHPID"
    istioctl manifest generate -f "$1" >"$partial" || return 1
    mv "$partial" "$rendered"
  fi
  rendered_images_are_listed "$rendered" "$2"
}

# istioctl validate -f FILE, once per content in the run: a byte-identical file (41 bundle files
# with Istio resources in a full run, 10 different) is valid to the same istioctl as its first.
istioctl_validate() {
  local valid
  valid="$work/validated/$(sha256sum <"$1" | cut -d' ' -f1)"
  [ ! -f "$valid" ] || return 0
  istioctl validate -f "$1" || return 1
  : >"$valid"
}

check_istio_resources() {
  local tree="$1" c f bundle
  for c in $(clusters_of "$tree"); do
    while read -r f; do
      if grep -q '^apiVersion: [a-z.]*istio\.io/' "$tree/$c/$f"; then
        files_checked=$((files_checked + 1))
        check "istioctl validate -f $c/$f" istioctl_validate "$tree/$c/$f" || true
      fi
    done < <(bundle_files "$tree/$c")
    bundle="$job/bundle-$c.yaml"
    check "kubectl kustomize $c" kubectl kustomize "$tree/$c" -o "$bundle" || continue
    if check "istioctl analyze --use-kube=false $c" istioctl analyze --use-kube=false "$bundle"; then
      # Warnings and infos are listed, not failed.
      grep -E '^(Warning|Info)' "$job/check.log" | sed "s|^|    $c: |" || true
    fi
  done
}

# Every `helm upgrade --install` line of a cluster's install.sh, as helm template.
check_helm_values() {
  local tree="$1" c line lines
  for c in $(clusters_of "$tree"); do
    [ -d "$tree/$c/helm" ] || continue
    lines=0
    while read -r line; do
      lines=$((lines + 1))
      files_checked=$((files_checked + 1))
      check "helm template ($c: ${line#helm upgrade --install })" helm_template_line "$tree/$c" "$line" \
        "$(context_of "$tree" "$c")" || true
    done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' -e 's/^[[:space:]]*//' "$tree/$c/scripts/install.sh" |
      grep '^helm upgrade --install ')
    # install.sh's helm lines sit inside its phase functions: finding none is this check's failure.
    [ "$lines" -gt 0 ] || check "helm template ($c): install.sh has helm values but no helm line was found" false || true
  done
}

helm_template_line() {
  local dir="$1" line="$2" rendered="$job/rendered.yaml"
  # The line is meshplan's own generated, quoted shell; helm here renders instead of installing.
  (
    # shellcheck disable=SC2034 # the line refers to it
    context="$3"
    cd "$dir"
    # shellcheck disable=SC2317 # called by the eval below
    helm() { shift 2 && command helm template "$@" >"$rendered"; }
    eval "$line"
  ) || return 1
  rendered_images_are_listed "$rendered" "$dir/../images.txt"
}

# What helm renders pulls only images the tree's images.txt lists (what a closed network must
# mirror), and names no retired Istio location (issue 23).
rendered_images_are_listed() {
  local rendered="$1" listed="$2" image bad=0
  if grep -nE 'istio-release\.storage\.googleapis\.com|gcr\.io/istio-release|registry\.istio\.io' "$rendered"; then
    echo "the rendered chart names a retired Istio location (above)"
    bad=1
  fi
  while read -r image; do
    [ "$image" = auto ] && continue
    if ! grep -v '^#' "$listed" | cut -d' ' -f1 | grep -qxF -- "$image"; then
      echo "the rendered chart pulls $image, which images.txt does not list"
      bad=1
    fi
  done < <(python3 "$here/images.py" "$rendered")
  return "$bad"
}

# ---------------------------------------------------------------------------------------------
# Check 4: API servers

# Below Linux's ephemeral range (32768-60999): a client socket there could hold a server's port.
port_base="${MESHPLAN_REAL_TOOLS_PORT_BASE:-24400}"

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

need_port() {
  port_free "$1" || fatal "port $1 on 127.0.0.1 is taken by another program; free it or set MESHPLAN_REAL_TOOLS_PORT_BASE (now $port_base) to a free range"
}

# One CA, serving certificate, token and service-account key for every server of the run.
make_pki() {
  local pki="$work/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=real-tools-ca
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=kube-apiserver
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    echo "real-tools-admin,admin,admin,system:masters" >tokens.csv
  ) >"$work/pki.log" 2>&1 || fatal "openssl could not make the test PKI: $(tail -n 3 "$work/pki.log")"
}

start_etcd() {
  local client=$((port_base)) peer=$((port_base + 1))
  need_port "$client"
  need_port "$peer"
  etcd --name real-tools --data-dir "$work/etcd" --log-level error --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "real-tools=http://127.0.0.1:$peer" --listen-metrics-urls "" \
    >"$work/etcd.log" 2>&1 &
  pids+=("$!")
  etcd_url="http://127.0.0.1:$client"
}

# Ports: etcd takes port_base and the next; each job slot a block of 40 after port_base+10:
# API servers from the block's start (15), MetalLB controllers' metrics from the 16th (15), the
# canary's second istiod (check 8) the five after them, istiod the block's last five.
slot_ports=40 slot_servers=15 slot_metallb=15 slot_canary=30 slot_istiod=35

slot_port() {
  echo $((port_base + 10 + slot * slot_ports + $1))
}

# start_apiserver INDEX PREFIX SERVICE_CIDR: the job's INDEXth kube-apiserver, its data under
# PREFIX, serving the cluster's planned service range (its Services' ClusterIPs are of the
# planned family, which MetalLB compares with the address a Service asks for).
start_apiserver() {
  local i="$1" prefix="$2" service_cidr="$3" port pki="$work/pki" advertise=127.0.0.1
  [ "$i" -lt "$slot_servers" ] || fatal "more than $slot_servers clusters in one plan; raise slot_servers in run.sh"
  port="$(slot_port "$i")"
  need_port "$port"
  # The advertised address must be of the service range's family (an IPv6-only cluster's too);
  # it only names the `kubernetes` Service's endpoint, which nothing here calls.
  case "$service_cidr" in
    *:*) advertise=::1 ;;
  esac
  kube-apiserver --etcd-servers "$etcd_url" --etcd-prefix "$prefix" \
    --bind-address 127.0.0.1 --advertise-address "$advertise" --secure-port "$port" \
    --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
    --token-auth-file "$pki/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$service_cidr" --profiling=false \
    >"$job/apiserver-$i.log" 2>&1 &
  pids+=("$!")
  server_pid[i]="$!"
  server_port[i]="$port"
}

# write_kubeconfig CONTEXT=PORT...: $KUBECONFIG with one context per server (the CA embedded, the
# admin token), and $KUBECONFIG-<i> with the ith alone (the controller-manager's and MetalLB's).
# Written by kube.py, not by 3 kubectl runs a context (docs/performance.md).
write_kubeconfig() {
  python3 "$here/kube.py" kubeconfig "$KUBECONFIG" "$work/pki/ca.crt" real-tools-admin "$@"
}

# wait_ready CONTEXT...: the job's servers 0, 1, ... (of these contexts) answer /readyz, within
# 60 s; one that exits or does not is a failure, with the end of its log.
wait_ready() {
  local i args=() status line
  for i in $(seq 0 $(($# - 1))); do
    args+=("$i:${*:$((i + 1)):1}:${server_pid[i]}")
  done
  status=0
  while read -r i line; do
    status=1
    case "$line" in
      exited) fail "kube-apiserver for ${*:$((i + 1)):1} exited" "$job/apiserver-$i.log" ;;
      *) fail "kube-apiserver for ${*:$((i + 1)):1} did not become ready in 60 s" "$job/apiserver-$i.log" ;;
    esac
  done < <(python3 "$here/kube.py" ready "${args[@]}" || true)
  return "$status"
}

# The controller-manager runs only the token controller, which create-remote-secret waits for, and
# the one that gives each namespace its `default` ServiceAccount, which check 5's pods run as.
start_token_controller() {
  local i="$1" kc="$KUBECONFIG-$1"
  kube-controller-manager --kubeconfig "$kc" \
    --controllers serviceaccount-token,serviceaccount --leader-elect=false --secure-port 0 \
    --service-account-private-key-file "$work/pki/sa.key" --root-ca-file "$work/pki/ca.crt" \
    >"$job/controller-manager-$i.log" 2>&1 &
  pids+=("$!")
}

# start_metallb INDEX CONTEXT: MetalLB's controller for the job's INDEXth cluster, as its
# Deployment runs it (in the plan's MetalLB namespace), out of cluster: no webhook (its port is
# fixed at 9443 on every interface, one per machine; the controller validates the same
# configuration itself when it loads the pools) and no memberlist secret (the speakers' business).
start_metallb() {
  local i="$1" kc="$KUBECONFIG-$1" port
  [ "$i" -lt "$slot_metallb" ] || fatal "more than $slot_metallb MetalLB clusters in one plan; raise slot_metallb in run.sh"
  port="$(slot_port $((slot_servers + i)))"
  need_port "$port"
  "$metallb_dir/bin/metallb-controller-$metallb_version" --kubeconfig "$kc" --namespace "$metallb_namespace" \
    --webhook-mode disabled --port "$port" --log-level info >"$job/metallb-$i.log" 2>&1 &
  pids+=("$!")
  metallb_pid[$!]=1
}

server_cpu_ticks=0 metallb_cpu_ticks=0
declare -A metallb_pid=()

# A plan's servers hold nothing worth a graceful shutdown (which waits up to a minute for open
# watches), so they are killed outright, after the CPU they used is added up (docs/testing.md:
# where a plan's time goes).
stop_servers() {
  local pid keep=() stat
  for pid in "${pids[@]}"; do
    if [ "$pid" = "${etcd_pid:-}" ]; then
      keep+=("$pid")
      continue
    fi
    if stat="$(cat "/proc/$pid/stat" 2>/dev/null)"; then
      read -r -a stat <<<"${stat##*) }"
      if [ -n "${metallb_pid[$pid]:-}" ]; then
        metallb_cpu_ticks=$((metallb_cpu_ticks + stat[11] + stat[12]))
      else
        server_cpu_ticks=$((server_cpu_ticks + stat[11] + stat[12]))
      fi
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=("${keep[@]}")
}

# What a cluster has before meshplan's procedure runs: the CRDs its prerequisites bring
# (Gateway API, and MetalLB's of the release that checks the plan, already in its etcd prefix:
# seed_crds; Istio's own come from the install itself, from the base chart), the plan's MetalLB
# namespace and kube-proxy's ConfigMap,
# and the Nodes that node-labels.sh labels (one, `real-tools-node`, where it labels them all: the
# sample pods are bound to it, so istiod reads their locality from the labels the script set).
prepare_cluster() {
  local tree="$1" c="$2" ctx="$3" nodes=()
  if [ -f "$tree/$c/scripts/node-labels.sh" ]; then
    mapfile -t nodes < <(sed -n "s/.* label nodes '\{0,1\}\([^' ]*\)'\{0,1\} .*/\1/p" "$tree/$c/scripts/node-labels.sh" | sed 's/^--all$/real-tools-node/' | sort -u)
  fi
  # kube.py: the same namespace, ConfigMap, Nodes and wait for established CRDs, over HTTPS.
  python3 "$here/kube.py" prepare "$ctx" "$metallb_namespace" "${nodes[@]}"
}

# The prerequisite CRDs (Gateway API's, and MetalLB's of each controller release), applied once
# per release to a template API server whose data is under /crd-templates/RELEASE. Each cluster's
# prefix gets a copy before its server starts (seed_crds): a server that starts on CRDs already
# established serves them at once, for about a third of the CPU applying them costs it
# (docs/testing.md). Runs before the plan jobs, on the ports of slot 0.
make_crd_templates() {
  local pair version i=0 ctx failed=""
  local -a versions=() pairs=() ctxs=()
  job="$work/crd-templates" slot=0
  mkdir -p "$job"
  export KUBECONFIG="$job/kubeconfig"
  for pair in $METALLB_PAIRS; do
    version="${pair#*=}"
    versions+=("$version")
    start_apiserver "$i" "/crd-templates/$version" 10.96.0.0/16
    pairs+=("crd-template-$version=${server_port[i]}") ctxs+=("crd-template-$version")
    i=$((i + 1))
  done
  write_kubeconfig "${pairs[@]}" >"$job/kubeconfig.log" 2>&1 || failed=1
  [ -n "$failed" ] || wait_ready "${ctxs[@]}" || failed=1
  for i in "${!versions[@]}"; do
    ctx="crd-template-${versions[i]}"
    [ -n "$failed" ] ||
      kubectl --context "$ctx" apply --server-side -f "$here/crds/" -f "$metallb_dir/crds/${versions[i]}/" >"$job/apply-$i.log" 2>&1 ||
      failed=1
  done
  for i in "${!versions[@]}"; do
    [ -n "$failed" ] ||
      kubectl --context "crd-template-${versions[i]}" wait crd --all --for=condition=Established --timeout=60s >>"$job/apply-$i.log" 2>&1 ||
      failed=1
  done
  stop_servers
  server_cpu_ticks=0
  unset KUBECONFIG
  job="" slot=""
  [ -z "$failed" ] || fatal "the CRD templates could not be made: $(tail -n 5 "$work/crd-templates/"*.log)"
}

# seed_crds PREFIX: the template CRDs of the plan's MetalLB release, copied under PREFIX.
seed_crds() {
  python3 "$here/etcd-copy.py" "$etcd_url" "/crd-templates/$metallb_version/apiextensions.k8s.io/" "$1/apiextensions.k8s.io/"
}

# mesh_key N: the path of the run's Nth RSA 2048 key for make_mesh_certs, made on first use.
# Generating an RSA key is nearly all of what a plan's CA cost (0.15-0.25 s of CPU each, 0.8 s
# for a three-cluster plan); the keys are the same in every plan, each plan's certificates its
# own (and its clusters' API servers its own, so no two plans' CAs ever meet).
mesh_key() {
  local key="$work/mesh-keys/$1.pem"
  if [ ! -f "$key" ]; then
    mkdir -p "$work/mesh-keys"
    # A name of this job's own: another job may be making the same key.
    openssl genrsa -out "$key.$BASHPID" 2048 2>/dev/null && mv "$key.$BASHPID" "$key"
  fi
  echo "$key"
}

# Test CAs for cacerts.sh: one root, an intermediate per cluster, laid out as Istio's tools/certs.
# RSA 2048 keys, the plan's root the run's key 0 and its Nth cluster's intermediate key N.
make_mesh_certs() {
  local certs="$1" c n=0 key
  shift
  mkdir -p "$certs"
  (
    cd "$certs"
    key="$(mesh_key 0)"
    cp "$key" root-key.pem
    openssl req -x509 -key root-key.pem -out root-cert.pem -days 2 -subj /O=Istio/CN=Root\ CA
    for c in "$@"; do
      mkdir -p "$c"
      n=$((n + 1))
      key="$(mesh_key "$n")"
      cp "$key" "$c/ca-key.pem"
      openssl req -new -key "$c/ca-key.pem" -out "$c/ca.csr" -subj "/O=Istio/CN=Intermediate CA $c"
      printf 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n' >"$c/ext"
      openssl x509 -req -in "$c/ca.csr" -CA root-cert.pem -CAkey root-key.pem -CAcreateserial -days 2 -out "$c/ca-cert.pem" -extfile "$c/ext"
      cp root-cert.pem "$c/root-cert.pem"
      cat "$c/ca-cert.pem" root-cert.pem >"$c/cert-chain.pem"
    done
  ) >"$job/certs.log" 2>&1
}

# Check 6's other root (live-doctor.sh's root_mismatch mutation: a primary's cacerts replaced by
# an intermediate of another root), made once a run: the mutation needs only a root that is not
# the install's, so one root and one intermediate, ECDSA P-256 (key generation in milliseconds,
# where make_mesh_certs's RSA 2048 keys took a plan tenths of a second each), serve every plan.
# check_doctor lays it out per cluster as a CA directory is (CLUSTER/ca-cert.pem ...).
make_other_ca() {
  local ca="$work/other-ca"
  mkdir -p "$ca/intermediate"
  (
    cd "$ca"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout root-key.pem \
      -out root-cert.pem -days 2 -subj "/O=Istio/CN=Other Root CA"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout intermediate/ca-key.pem \
      -out intermediate/ca.csr -subj "/O=Istio/CN=Other Intermediate CA"
    printf 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n' >intermediate/ext
    openssl x509 -req -in intermediate/ca.csr -CA root-cert.pem -CAkey root-key.pem -CAcreateserial -days 2 \
      -out intermediate/ca-cert.pem -extfile intermediate/ext
    cp root-cert.pem intermediate/root-cert.pem
    cat intermediate/ca-cert.pem root-cert.pem >intermediate/cert-chain.pem
  ) >"$work/other-ca.log" 2>&1 || fatal "openssl could not make check 6's other root: $(tail -n 3 "$work/other-ca.log")"
}

# The generated install procedure, run as a user would (bash install.sh at the top of the tree,
# CERTS_DIR outside it), with the stubs first on PATH. The one place that knows how it is
# invoked. The istioctl built here is not the plan's release (versions.env), and the checks of
# a running mesh need pods: both are switched off with the switches install.sh documents. Every
# address here is assigned within seconds (MetalLB's controller, the cloud stand-in) or never
# (MetalLB refused the Service): the install's address waits last a minute, not five.
run_install_procedure() {
  local tree="$1" certs="$2"
  (cd "$tree" && CERTS_DIR="$certs" MESHPLAN_SKIP_VERSION_CHECK=1 MESHPLAN_SKIP_VERIFY=1 \
    MESHPLAN_WAIT_TIMEOUT="${MESHPLAN_WAIT_TIMEOUT:-60s}" bash install.sh)
}

# Every object each cluster's bundle declares must now exist on that cluster's server, and
# every remote secret its primary's remote-secrets.sh creates.
verify_objects() {
  local tree="$1" c ctx n name
  for c in $(clusters_of "$tree"); do
    ctx="$(context_of "$tree" "$c")"
    kubectl kustomize "$tree/$c" -o "$job/declared-$c.yaml" 2>/dev/null || continue
    n="$(count_docs "$job/declared-$c.yaml")"
    if check "kubectl get (every object of $c's bundle on $ctx)" kubectl --context "$ctx" get -f "$job/declared-$c.yaml"; then
      objects_applied=$((objects_applied + n))
    fi
    [ -f "$tree/$c/scripts/remote-secrets.sh" ] || continue
    while read -r name; do
      if check "kubectl get secret istio-remote-secret-$name on $ctx" \
        kubectl --context "$ctx" -n istio-system get secret "istio-remote-secret-$name"; then
        objects_applied=$((objects_applied + 1))
      fi
    done < <(sed -n "s/.* --name '\{0,1\}\([^' ]*\)'\{0,1\}.*/\1/p" "$tree/$c/scripts/remote-secrets.sh")
  done
}

# Check 5: istiod (pilot-discovery) against the first primary's server, in every plan with more
# than one cluster (istiod.py says what it checks and what it stands in for).
check_istiod() {
  local plan="$1" tree="$2" i
  local -n cluster_names="$3" cluster_ports="$4"
  [ "${#cluster_names[@]}" -gt 1 ] || return 0
  local args=() ports=()
  for i in "${!cluster_names[@]}"; do
    args+=(--cluster "${cluster_names[i]}=${cluster_ports[i]}")
  done
  for i in 0 1 2 3 4; do
    ports+=("$(slot_port $((slot_istiod + i)))")
    need_port "${ports[i]}"
  done
  istiod_plans=$((istiod_plans + 1))
  local t0="$EPOCHREALTIME"
  if ! "$meshplan" explain --traffic --format json --quiet "$plan" >"$job/traffic.json" 2>"$job/traffic.log"; then
    fail "meshplan explain --traffic $plan" "$job/traffic.log"
    return 0
  fi
  if check "istiod (pilot-discovery) sees every cluster's endpoints, networks and gateways, and sends each client the traffic model's tiers" \
    python3 "$here/istiod.py" --plan "$plan" "${args[@]}" --pilot-discovery "$MESHPLAN_REAL_TOOLS_BIN/pilot-discovery" \
    --xds-probe "$MESHPLAN_REAL_TOOLS_BIN/xds-probe" --traffic "$job/traffic.json" \
    --ports "$(IFS=,; echo "${ports[*]}")" --work "$job" --stub-log "$MESHPLAN_REAL_TOOLS_STUB_LOG"; then
    cat "$job/check.log"
  fi
  istiod_seconds="$(seconds "$t0" "$EPOCHREALTIME")"
}

# Check 6: the tree's doctor.sh passes on the clusters as installed, and each live mutation makes
# it report exactly its code (live-doctor.sh says which), with the real kubectl, not the stubs.
check_doctor() {
  local other="$job/other-certs" c
  rm -rf "$other"
  mkdir -p "$other"
  # The run's other root (make_other_ca), under each cluster's name.
  for c in "${names[@]}"; do
    ln -s "$work/other-ca/intermediate" "$other/$c"
  done
  if check "doctor.sh matches the installed clusters and names each live mutation by its code" \
    env PATH="$MESHPLAN_REAL_TOOLS_BIN:$PATH" bash "$here/live-doctor.sh" "$1" "$other"; then
    cat "$job/check.log"
  fi
}

# plan_revision PLAN: prints `[mesh.istio] revision`; fails when the plan has none.
plan_revision() {
  python3 -c 'import sys, tomllib; r = tomllib.load(open(sys.argv[1], "rb"))["mesh"]["istio"].get("revision"); print(r or ""); sys.exit(0 if r else 1)' "$1"
}

# Check 7, in plans with `[mesh.istio] revision`: the revision's objects and the default revision
# tag, which install.sh set with the real istioctl, on every cluster (revision.py says which).
check_revision() {
  local plan="$1"
  plan_revision "$plan" >/dev/null || return 0
  if check "revision: istiod-<revision>, the remote's revisioned Service and EndpointSlice, and the default revision tag (set by the real istioctl) calling them" \
    python3 "$here/revision.py" --plan "$plan"; then
    cat "$job/check.log"
  fi
}

# Check 8, the canary, in plans with `[mesh.istio] revision`: on API servers of their own, the
# same plan without its revision is installed (its whole install.sh: a running mesh), then
# check_canary_upgrade puts the revision beside it.
check_canary() {
  local plan="$1" name="$2" tree="$3" old="$job/canary.toml" oldtree="$job/canary-out"
  plan_revision "$plan" >/dev/null || return 0
  echo "   canary: $name without its revision, installed; then its revision beside it"
  sed '/^revision = /d' "$plan" >"$old"
  if plan_revision "$old" >/dev/null; then
    fail "canary: the plan without its revision still has one ($old)"
    return 0
  fi
  check "canary: meshplan build of the plan without its revision" "$meshplan" build "$old" -o "$oldtree" || return 0
  canary_plan="$plan" canary_tree="$tree" check_on_servers "$old" "$oldtree" "$name-canary"
}

# run_tree_line TREE LINE: one line of TREE's install.sh, run from TREE as install.sh runs it.
run_tree_line() {
  (cd "$1" && MESHPLAN_SKIP_VERSION_CHECK=1 MESHPLAN_SKIP_VERIFY=1 \
    MESHPLAN_WAIT_TIMEOUT="${MESHPLAN_WAIT_TIMEOUT:-60s}" bash -c "$2")
}

# The canary on servers where the unrevisioned tree is installed: the revisioned tree's control
# plane steps (its install.sh's `control-plane` lines, in its order); the old control plane must
# still serve injection (revision.py --before); then the revisioned tree's own `istioctl tag set
# default` lines, after which the tag must call istiod-<revision> everywhere (revision.py); and
# pilot-discovery of both revisions, at once, must each see the mesh and serve xds-probe the
# plan's endpoints (istiod.py --revision default --also-revision <revision>).
check_canary_upgrade() {
  local plan="$1" tree="$2" line revision i
  local -n cluster_names="$3" cluster_ports="$4"
  revision="$(plan_revision "$plan")"
  while read -r line; do
    check "canary: $line (revision $revision beside the running control plane)" run_tree_line "$tree" "$line" || return 0
  done < <(grep -E '^bash [^ ]+/scripts/install\.sh control-plane$' "$tree/install.sh")
  if check "canary, before the tag moves: revision $revision installed beside the running control plane, which still serves istio-injection=enabled" \
    python3 "$here/revision.py" --plan "$plan" --before; then
    echo "   canary, before the tag moves:"
    cat "$job/check.log"
  fi
  while read -r line; do
    check "canary: $line" run_tree_line "$tree" "$line" || return 0
  done < <(grep -E '^istioctl tag set default ' "$tree/install.sh")
  if check "canary, after the tag moved: the default revision tag calls istiod-$revision and the old injector serves nothing" \
    python3 "$here/revision.py" --plan "$plan"; then
    echo "   canary, after the tag moved (the tree's own istioctl tag set default lines):"
    cat "$job/check.log"
  fi
  check_both_revisions "canary" "$plan" "$revision" cluster_names cluster_ports
}

# check_both_revisions WHAT PLAN REVISION NAMES PORTS: pilot-discovery of revision default and of
# REVISION at once on the first primary (its Deployments istiod and istiod-REVISION, each with its
# env and mesh config), each watching every cluster and serving xds-probe the plan's endpoints
# (istiod.py --also-revision), without the live DestinationRule edits.
check_both_revisions() {
  local what="$1" plan="$2" revision="$3" i
  local -n both_names="$4" both_ports="$5"
  [ "${#both_names[@]}" -gt 1 ] || return 0
  local args=() ports=() also=()
  for i in "${!both_names[@]}"; do
    args+=(--cluster "${both_names[i]}=${both_ports[i]}")
  done
  for i in 0 1 2 3 4; do
    ports+=("$(slot_port $((slot_istiod + i)))") also+=("$(slot_port $((slot_canary + i)))")
    need_port "${ports[i]}"
    need_port "${also[i]}"
  done
  if ! "$meshplan" explain --traffic --format json --quiet "$plan" >"$job/traffic.json" 2>"$job/traffic.log"; then
    fail "meshplan explain --traffic $plan" "$job/traffic.log"
    return 0
  fi
  if check "$what: pilot-discovery of revision default and of revision $revision at once, each watching every cluster and serving xds-probe the plan's endpoints" \
    python3 "$here/istiod.py" --plan "$plan" "${args[@]}" --pilot-discovery "$MESHPLAN_REAL_TOOLS_BIN/pilot-discovery" \
    --xds-probe "$MESHPLAN_REAL_TOOLS_BIN/xds-probe" --traffic "$job/traffic.json" \
    --ports "$(IFS=,; echo "${ports[*]}")" --revision default --name istiod-default --no-edits \
    --also-revision "$revision" --also-ports "$(IFS=,; echo "${also[*]}")" \
    --work "$job" --stub-log "$MESHPLAN_REAL_TOOLS_STUB_LOG"; then
    echo "   $what, both revisions' pilot-discovery at once:"
    cat "$job/check.log"
  fi
}

# run_upgrade DIR PHASE...: the upgrade's upgrade.sh, run from DIR with the stubs first on PATH,
# as run_install_procedure runs install.sh; the rollback's old istioctl is the same build.
run_upgrade() {
  local dir="$1"
  shift
  (cd "$dir" && ISTIOCTL_OLD="$here/stubs/istioctl" MESHPLAN_SKIP_VERSION_CHECK=1 MESHPLAN_SKIP_VERIFY=1 \
    MESHPLAN_WAIT_TIMEOUT="${MESHPLAN_WAIT_TIMEOUT:-60s}" bash upgrade.sh "$@")
}

# Check 10, for every shipped plan (plans/), on the servers check 4 installed it on: the plan
# bumped one minor (bump.py) is compiled by `meshplan upgrade`, and the generated upgrade.sh runs
# phase by phase. A sidecar mesh (canary): after `canary` the new revision stands beside the old
# one, which still serves injection (revision.py --before); after `tags` the default tag calls the
# new istiod everywhere (revision.py); pilot-discovery of both revisions then serves at once;
# after `gateways verify remove-old` the old istiod and injector are gone and the tag still calls
# the new one. An ambient mesh (in place): after upgrade.sh, istiod, istio-cni and ztunnel run
# the new release's images.
# shellcheck disable=SC2034 # up_names and up_ports are read through check_both_revisions's namerefs
check_upgrade() {
  local plan="$1" name="$2"
  local -n up_names="$3" up_ports="$4"
  case "$plan" in "$repo"/plans/*) ;; *) return 0 ;; esac
  local new="$job/upgrade.toml" dir="$job/up" revision i
  python3 "$here/bump.py" "$plan" >"$new" || {
    fail "upgrade: bump.py $plan"
    return 0
  }
  rm -rf "$dir"
  check "upgrade: meshplan upgrade $name one minor newer" "$meshplan" upgrade -q "$plan" "$new" -o "$dir" || return 0
  files_checked=$((files_checked + 1))
  if ! revision="$(plan_revision "$new")"; then
    check "upgrade (in place): upgrade.sh" run_upgrade "$dir" || return 0
    check "upgrade (in place): istiod, istio-cni and ztunnel run the new release's images" \
      python3 "$here/revision.py" --plan "$new" --in-place && echo "   upgrade (in place), after upgrade.sh:" && cat "$job/check.log"
    return 0
  fi
  check "upgrade: upgrade.sh canary" run_upgrade "$dir" canary || return 0
  if check "upgrade, after canary: revision $revision beside the old control plane, which still serves istio-injection=enabled" \
    python3 "$here/revision.py" --plan "$new" --before; then
    echo "   upgrade, after canary:"
    cat "$job/check.log"
  fi
  check "upgrade: upgrade.sh tags" run_upgrade "$dir" tags || return 0
  if check "upgrade, after tags: the default revision tag calls istiod-$revision everywhere" \
    python3 "$here/revision.py" --plan "$new"; then
    echo "   upgrade, after tags:"
    cat "$job/check.log"
  fi
  check_both_revisions "upgrade" "$new" "$revision" up_names up_ports
  check "upgrade: upgrade.sh gateways verify remove-old" run_upgrade "$dir" gateways verify remove-old || return 0
  # istioctl uninstall --revision selects what istioctl install labelled (operator.istio.io/
  # component, install.operator.istio.io/owning-resource); the istioctl stub applies `manifest
  # generate` output, which lacks those labels, so only a Helm plan's removal is proven here.
  if ! grep -q '^installer = "helm"' "$plan"; then
    echo "   upgrade, after remove-old: not compared (istioctl uninstall finds no stub-installed object; README.md, check 10)"
    return 0
  fi
  if check "upgrade, after remove-old: the old revision is gone, the tag still calls istiod-$revision" \
    python3 "$here/revision.py" --plan "$new" --removed; then
    echo "   upgrade, after remove-old:"
    cat "$job/check.log"
  fi
}

# Check 9, only for a plan with [mesh.trust] phases: its CA made by `meshplan certs` (ECDSA),
# proven by `check --certs`, then each phase's cacerts given to the first primary's istiod, which
# must publish exactly the phase's roots in istio-ca-root-cert (trust.py).
check_trust() {
  local plan="$1" tree="$2" i ports=()
  grep -q '^\[mesh\.trust\]' "$plan" || return 0
  for i in 0 1 2 3 4; do
    ports+=("$(slot_port $((slot_istiod + i)))")
    need_port "${ports[i]}"
  done
  local ca="$job/trust-ca"
  rm -rf "$ca"
  check "meshplan certs makes every phase's roots, intermediates and CRLs" \
    "$meshplan" certs "$plan" --out "$ca" --key-algorithm ecdsa-p256 --quiet || return 0
  check "meshplan check --certs proves every phase (each cluster pair, each transition)" \
    "$meshplan" check "$plan" --certs "$ca" --quiet || return 0
  echo "ok   meshplan certs and check --certs: every phase proven"
  if check "istiod publishes exactly each phase's roots in istio-ca-root-cert" \
    python3 "$here/trust.py" --plan "$plan" --tree "$tree" --certs "$ca" \
    --pilot-discovery "$MESHPLAN_REAL_TOOLS_BIN/pilot-discovery" \
    --ports "$(IFS=,; echo "${ports[*]}")" --work "$job/trust"; then
    echo "ok   istiod published exactly each phase's roots"
    cat "$job/check.log"
  fi
}

# What the plan itself says about its clusters' service ranges and MetalLB (metallb.py facts):
# sets service_cidr_of and pools_of (cluster name -> value), metallb_namespace, and
# metallb_version, the controller release paired with the plan's mesh.metallb.version in
# metallb.env.
read_plan_facts() {
  local plan="$1" name cidr pools minor="" pair
  service_cidr_of=() pools_of=() metallb_version="" metallb_namespace=""
  while read -r name cidr pools; do
    if [ "$name" = version ]; then
      minor="$cidr" metallb_namespace="$pools"
      continue
    fi
    service_cidr_of[$name]="$cidr" pools_of[$name]="$pools"
  done < <(python3 "$here/metallb.py" facts --plan "$plan")
  for pair in $METALLB_PAIRS; do
    [ "${pair%%=*}" != "$minor" ] || metallb_version="${pair#*=}"
  done
  [ -n "$metallb_version" ] || {
    fail "the plan's MetalLB version $minor has no controller pair in tests/real-tools/metallb.env (METALLB_PAIRS)"
    return 1
  }
}

declare -A service_cidr_of=() pools_of=()

# After the install procedure, on every cluster with MetalLB pools: every LoadBalancer Service
# holds its planned address, from MetalLB's controller (metallb.py check).
check_metallb() {
  local plan="$1" i args=()
  local -n cluster_names="$2" cluster_contexts="$3"
  for i in "${!cluster_names[@]}"; do
    args+=(--cluster "${cluster_names[i]}=${cluster_contexts[i]}")
  done
  if check "MetalLB's controller ($metallb_version) gave every LoadBalancer Service its planned address" \
    python3 "$here/metallb.py" check --plan "$plan" "${args[@]}"; then
    cat "$job/check.log"
  fi
}

check_on_servers() {
  local plan="$1" tree="$2" plan_name="$3" i=0 c ctx failed=""
  # shellcheck disable=SC2034 # read through check_istiod's and check_metallb's namerefs
  local -a names=() contexts=() pairs=()
  local metallb_contexts=""
  phase "${canary_tree:+c8-}c4-servers"
  export KUBECONFIG="$job/kubeconfig"
  rm -f "$KUBECONFIG"
  read_plan_facts "$plan" || return 0
  for c in $(clusters_of "$tree"); do
    ctx="$(context_of "$tree" "$c")"
    names+=("$c") contexts+=("$ctx")
    [ -n "${service_cidr_of[$c]:-}" ] || {
      fail "cluster directory $c is not a cluster of $plan"
      return 0
    }
    seed_crds "/$plan_name/$c" >>"$job/seed.log" 2>&1 || {
      fail "copy the prerequisite CRDs into $c's etcd prefix" "$job/seed.log"
      return 0
    }
    start_apiserver "$i" "/$plan_name/$c" "${service_cidr_of[$c]}"
    pairs+=("$ctx=${server_port[i]}")
    i=$((i + 1))
  done
  if ! write_kubeconfig "${pairs[@]}" >"$job/kubeconfig.log" 2>&1; then
    fail "write the kubeconfig of the API servers" "$job/kubeconfig.log"
    failed=1
  fi
  [ -n "$failed" ] || wait_ready "${contexts[@]}" || failed=1
  if [ -z "$failed" ]; then
    # The clusters are prepared at once: most of it is waiting for CRDs to be established.
    local -a preparing=()
    for i in "${!names[@]}"; do
      start_token_controller "$i"
      prepare_cluster "$tree" "${names[i]}" "${contexts[i]}" >"$job/prepare-$i.log" 2>&1 &
      preparing+=("$!")
    done
    for i in "${!names[@]}"; do
      wait "${preparing[i]}" || {
        fail "prepare ${names[i]} (CRDs, metallb-system, Nodes)" "$job/prepare-$i.log"
        failed=1
      }
    done
  fi
  if [ -z "$failed" ]; then
    # MetalLB's controller wherever the plan has pools, before the install applies them.
    for i in "${!names[@]}"; do
      [ "${pools_of[${names[i]}]}" = 1 ] || continue
      start_metallb "$i" "${contexts[i]}"
      metallb_contexts+="${contexts[i]}"$'\n'
      metallb_used="$metallb_version"
    done
    # The kubectl stub leaves these clusters' load balancer to MetalLB.
    export MESHPLAN_REAL_TOOLS_METALLB_CONTEXTS="$metallb_contexts"
    make_mesh_certs "$job/certs" "${names[@]}" || fail "openssl could not make the mesh certs" "$job/certs.log"
    export CERTS_DIR="$job/certs"
    files_checked=$((files_checked + $(find "$tree" -name '*.sh' -path '*scripts*' | wc -l) + 1))
    phase "${canary_tree:+c8-}c4-install"
    if check "install.sh against the API servers" run_install_procedure "$tree" "$CERTS_DIR"; then
      if [ -n "${canary_tree:-}" ]; then
        phase c8-canary
        check_canary_upgrade "$canary_plan" "$canary_tree" names server_port
        phase c8-servers-stop
        stop_servers
        return 0
      fi
      phase c4-verify
      verify_objects "$tree"
      phase c7-revision
      check_revision "$plan"
      phase c4-metallb
      [ -z "$metallb_contexts" ] || check_metallb "$plan" names contexts
      phase c5-istiod
      check_istiod "$plan" "$tree" names server_port
      phase c6-doctor
      check_doctor "$tree"
      phase c9-trust
      check_trust "$plan" "$tree"
      phase c10-upgrade
      check_upgrade "$plan" "$plan_name" names server_port
    elif [ -n "$metallb_contexts" ]; then
      # A Service that MetalLB left without its address is a common reason for the failure.
      check_metallb "$plan" names contexts
    fi
  fi
  phase "${canary_tree:+c8-}servers-stop"
  stop_servers
}

# ---------------------------------------------------------------------------------------------

check_plan() {
  local plan="$1" name tree before="$failures"
  name="$(basename "$plan" .toml)"
  tree="$job/out"
  echo "== $name"
  check "meshplan build $plan" "$meshplan" build "$plan" -o "$tree" || return 0
  if [ -n "$twin" ]; then
    # twins.py: no check reads [mesh.gitops] or gitops/, so $twin's checks prove this bundle.
    echo "ok   $name: the same plan as $twin apart from [mesh.gitops], and the same tree apart from gitops/ (twins.py): checks 1-10 ran on $twin"
    twin_plans=1
    return 0
  fi
  if [ -n "${MESHPLAN_REAL_TOOLS_BREAK:-}" ]; then
    # Shows that the checks fail on a broken tree: a shell command run in the tree, e.g. a sed.
    (cd "$tree" && bash -c "$MESHPLAN_REAL_TOOLS_BREAK") || fatal "MESHPLAN_REAL_TOOLS_BREAK failed"
  fi
  : >"$MESHPLAN_REAL_TOOLS_STUB_LOG"
  local t0="$EPOCHREALTIME" t1
  phase c1-operators
  check_istio_operators "$tree"
  phase c2-validate
  check_istio_resources "$tree"
  phase c3-helm
  check_helm_values "$tree"
  t1="$EPOCHREALTIME"
  istiod_seconds=0
  check_on_servers "$plan" "$tree" "$name"
  phase c8-build
  check_canary "$plan" "$name" "$tree"
  phase ""
  if [ "$failures" -eq "$before" ]; then
    [ -z "${MESHPLAN_REAL_TOOLS_PROFILE:-}" ] || profile_report "$job/profile.log"
    echo "ok   $name ($(wc -l <"$MESHPLAN_REAL_TOOLS_STUB_LOG") stubbed steps; files $(seconds "$t0" "$t1") s, servers $(seconds "$t1" "$EPOCHREALTIME") s of which istiod $istiod_seconds s; API servers and controller-managers used $((server_cpu_ticks / $(getconf CLK_TCK))) s CPU${metallb_used:+, MetalLB controller $metallb_used $(cpu_seconds "$metallb_cpu_ticks") s})"
  fi
}

# cpu_seconds TICKS: clock ticks as seconds, to a hundredth.
cpu_seconds() {
  local hundredths=$(($1 * 100 / $(getconf CLK_TCK)))
  printf '%d.%02d\n' $((hundredths / 100)) $((hundredths % 100))
}

# seconds START END: the time between two $EPOCHREALTIME readings, to a tenth.
seconds() {
  local a="${1/[.,]/}" b="${2/[.,]/}"
  local tenths=$(((b - a) / 100000))
  echo "$((tenths / 10)).$((tenths % 10))"
}

# plan_job INDEX PLAN SLOT: one plan's checks, in a background subshell with its own directory,
# ports, kubectl cache and stub log. Its counters go to $work/result-INDEX for main to add up.
plan_job() {
  local index="$1" plan i ports=() twin=""
  plan="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
  slot="$3" job="$work/plans/$1"
  [ -z "${twin_of[$index]:-}" ] || twin="$(basename "${plans[${twin_of[$index]}]}" .toml)"
  files_checked=0 objects_applied=0 failures=0 istiod_plans=0 twin_plans=0 metallb_used=""
  pids=()
  trap 'stop_servers; echo "$files_checked $objects_applied $failures $istiod_plans ${metallb_used:--} $twin_plans" >"$work/result-$index"' EXIT
  trap 'exit 143' TERM INT
  mkdir -p "$job"
  for i in 0 1 2 3 4; do
    ports+=("$(slot_port $((slot_istiod + i)))")
  done
  # The stubs read these: gateway.py (stubs/kubectl) runs istiod on the job's istiod ports.
  MESHPLAN_REAL_TOOLS_ISTIOD_PORTS="$(IFS=, && echo "${ports[*]}")"
  export MESHPLAN_REAL_TOOLS_RENDERED="$work/rendered"
  export MESHPLAN_REAL_TOOLS_STUB_LOG="$job/stubs.log" KUBECACHEDIR="$job/kube-cache" \
    MESHPLAN_REAL_TOOLS_PLAN="$plan" MESHPLAN_REAL_TOOLS_JOB="$job" MESHPLAN_REAL_TOOLS_ISTIOD_PORTS
  check_plan "$plan"
}

# plan_weight PLAN [INDEX]: how long the plan's checks take, roughly: its clusters, and more for
# the checks only some plans have (10, the upgrade, for plans/; 8, the canary on servers of its
# own, for a revision; 9, the trust phases); nothing for a twin (INDEX in twin_of). run_plans
# starts the heaviest first, so that the last job to finish is a short one.
plan_weight() {
  local w
  if [ -n "${2:-}" ] && [ -n "${twin_of[$2]:-}" ]; then
    echo 0
    return
  fi
  w="$(grep -c '^\[\[cluster\]\]' "$1" || true)"
  case "$1" in */plans/*) w=$((w + 4)) ;; esac
  ! plan_revision "$1" >/dev/null 2>&1 || w=$((w + 4))
  ! grep -q '^\[mesh\.trust\]' "$1" || w=$((w + 2))
  echo "$w"
}

# Runs the plans MESHPLAN_REAL_TOOLS_JOBS at a time (default: one more than the cores; most of a
# plan's time is spent waiting on API servers), heaviest first (plan_weight), and prints each
# plan's output whole, in the order given.
run_plans() {
  local plans=("$@") jobs="${MESHPLAN_REAL_TOOLS_JOBS:-$(($(nproc) + 1))}" i pid
  local -a free=() order=()
  local -A index_of=()
  local printed=0
  for ((i = 0; i < jobs; i++)); do
    free+=("$i")
  done
  mapfile -t order < <(for i in "${!plans[@]}"; do echo "$(plan_weight "${plans[i]}" "$i") $i"; done | sort -k1,1nr -k2,2n -s | cut -d' ' -f2)
  for i in "${order[@]}"; do
    while [ "${#free[@]}" -eq 0 ]; do
      reap_job
    done
    plan_job "$i" "${plans[i]}" "${free[0]}" >"$work/output-$i" 2>&1 &
    slot_of[$!]="${free[0]}" index_of[$!]="$i"
    free=("${free[@]:1}")
  done
  while [ "${#slot_of[@]}" -gt 0 ]; do
    reap_job
  done
}

# Waits for one job, frees its slot, and prints every finished plan not yet printed, in order.
reap_job() {
  local pid=""
  wait -n -p pid "${!slot_of[@]}" || true
  [ -n "$pid" ] || return 0
  free+=("${slot_of[$pid]}")
  if [ ! -f "$work/result-${index_of[$pid]}" ]; then
    echo "FAIL the job of ${plans[${index_of[$pid]}]} ended without a result" >>"$work/output-${index_of[$pid]}"
    echo "0 0 1 0 - 0" >"$work/result-${index_of[$pid]}"
  fi
  unset "slot_of[$pid]" "index_of[$pid]"
  local f o fl n m t
  while [ -f "$work/result-$printed" ]; do
    cat "$work/output-$printed"
    read -r f o fl n m t <"$work/result-$printed"
    files_checked=$((files_checked + f)) objects_applied=$((objects_applied + o))
    failures=$((failures + fl)) istiod_plans=$((istiod_plans + n)) twin_plans=$((twin_plans + t))
    [ "$m" = - ] || metallb_plans[$m]=$((${metallb_plans[$m]:-0} + 1))
    printed=$((printed + 1))
  done
}

# find_twins PLAN...: twin_of, from twins.py (each plan built once more, a few hundredths of a
# second each).
find_twins() {
  local out i twin
  out="$(python3 "$here/twins.py" "$meshplan" "$work/twins" "$@")" || fatal "twins.py could not compare the plans"
  while read -r i twin; do
    [ -n "$i" ] || continue
    twin_of[$i]="$twin"
  done <<<"$out"
  rm -rf "$work/twins"
}

main() {
  work="$(mktemp -d "${TMPDIR:-/tmp}/meshplan-real-tools.XXXXXX")"
  local plans=("$@")
  if [ "${#plans[@]}" -eq 0 ]; then
    # The trust fixtures that build (rotation-too-early fails check --certs by design).
    plans=("$repo"/plans/*.toml "$repo"/tests/fixtures/ok/*.toml
      "$repo"/tests/fixtures/trust/{rotation,merge,revocation}.toml)
  fi
  setup_tools
  build_meshplan
  find_twins "${plans[@]}"
  mkdir -p "$work/rendered" "$work/validated"
  make_pki
  make_other_ca
  start_etcd
  etcd_pid="${pids[-1]}"
  make_crd_templates
  run_plans "${plans[@]}"
  echo "istiod: pilot-discovery ran against $istiod_plans plans"
  [ "$twin_plans" -eq 0 ] || echo "twins: $twin_plans plans proven by a twin's checks (twins.py)"
  [ -z "${MESHPLAN_REAL_TOOLS_PROFILE:-}" ] || profile_report "$work"/plans/*/profile.log
  summary
  [ "$failures" -eq 0 ]
}

main "$@"
