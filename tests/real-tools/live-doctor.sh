#!/usr/bin/env bash
# Check 6 of run.sh: the tree's doctor.sh against the API servers the install procedure just ran
# on. Usage: live-doctor.sh TREE [OTHER_CA] (kubectl on PATH must be the real one, not the
# stubs; OTHER_CA: a CA directory of another root, laid out as CERTS_DIR, for the roots' mutation).
#
# doctor.sh must pass on the clusters as installed. Then every mutation below is made on its live
# object, all of them before doctor.sh runs again, and doctor.sh must report each of them and
# nothing else (exit 1): the text run exactly their codes, the --json run exactly their findings,
# each mutation's code for the cluster and object it mutated (the roots' code for any cluster and
# object: istiod rewrites every ConfigMap it publishes). Then every object is restored, and
# doctor.sh must pass again. (Until issue 28 each mutation had a pair of doctor.sh runs of its
# own, each reading every cluster: up to ten pairs a plan, seven or eight on most, where three
# now prove each code and its object.)
#   - a primary's cacerts replaced with another root, which meshplan::live::root_mismatch
#     its real istiod then publishes (trust.py --publish)
#   - istio-system relabelled with another network          meshplan::live::network_label
#   - a primary's remote secret deleted                     meshplan::live::remote_secret_missing
#   - a remote secret for a cluster not in the plan         meshplan::live::remote_secret_stale
#   - the east-west Service's status patched to another IP  meshplan::live::eastwest_address
#   - a MetalLB pool given one more range                   meshplan::live::metallb_pool
#   - the Gateway API CRDs' bundle-version lowered          meshplan::live::gateway_api_version
#     (to just below the plan's: v1.5's CRDs refuse anything before v1.5.0)
#   - a sample Deployment deleted                           meshplan::live::placement
# A mutation whose object the plan does not have is skipped (and says so). The east-west address
# is mutated only where no MetalLB controller runs (the cloud stand-in's clusters): MetalLB's
# controller would write its own address back at once. Where the mutated values come from: the
# calls doctor.sh itself makes (its per-cluster lines), so this knows nothing of the plan format.
#
# The roots (verify-trust.sh's half of doctor.sh) are checked against the CA directory the
# install used (CERTS_DIR), with every primary's istio-ca-root-cert published by its own real
# istiod first (check 5 ran the first primary's; trust.py --publish runs the others'). Plans with
# [mesh.trust] phases are left to check 9 (their CA directory has one root per phase) and run
# every doctor.sh with MESHPLAN_SKIP_VERIFY=1. MESHPLAN_SKIP_REMOTE_CLUSTERS=1
# throughout: `istioctl remote-clusters` port-forwards to an istiod pod, which needs a kubelet;
# tests/doctor.rs proves that half, and check 5 that istiod's debug/clusterz syncs every cluster.
#
# Stand-in: a `[[service]]` planned in a cluster where no sample runs it has no pod here (its team
# deploys it): one ready EndpointSlice is made for it before the first run and deleted at the end.
#
# Each pair of runs (text, then --json) is on one state of the servers: the --json run is given the
# text run's kubectl answers (replay-kubectl.sh), so the two formats are of the same findings.
set -euo pipefail
tree="$1"
other_ca="${2:-}"
here="$(cd "$(dirname "$0")" && pwd)"
export MESHPLAN_SKIP_VERIFY=1 MESHPLAN_SKIP_REMOTE_CLUSTERS=1
failed=0
out="$(mktemp)"
kept="$(mktemp -d)"
replay="$(mktemp -d)"
trap 'rm -rf "$out" "$kept" "$replay"' EXIT
mkdir "$replay/bin" "$replay/answers"
ln -s "$here/replay-kubectl.sh" "$replay/bin/kubectl"

# The words of doctor.sh's first call line starting with FUNCTION (shell-quoted words), one a
# line; nothing when it has none.
call_of() {
  local line
  line="$(grep -m1 -E "^(  |if )$1 " "$tree/doctor.sh")" || return 0
  line="${line#if }" line="${line#  }"
  xargs -n1 printf '%s\n' <<<"${line%; then}"
}

# save CONTEXT NAMESPACE OBJECT: the object as JSON in $kept, without what the server sets, to
# be created again by restore.
save() {
  kubectl --context "$1" -n "$2" get "$3" -o json |
    python3 -c 'import json, sys
o = json.load(sys.stdin)
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
    o["metadata"].pop(k, None)
o.pop("status", None)
json.dump(o, sys.stdout)' >"$kept/$1.$2.${3//\//.}"
}

# restore CONTEXT NAMESPACE OBJECT: the saved object, in place of the live one.
restore() {
  kubectl --context "$1" -n "$2" delete "$3" --ignore-not-found >/dev/null
  kubectl --context "$1" -n "$2" create -f "$kept/$1.$2.${3//\//.}" >/dev/null
}

# Stand-in EndpointSlices for the [[service]]s planned where no sample runs them
# (endpoints CLUSTER CONTEXT HERE, HERE as namespace/name words).
stand_ins=()
while IFS= read -r line; do
  mapfile -t w < <(xargs -n1 printf '%s\n' <<<"${line#  }")
  for service in ${w[3]}; do
    namespace="${service%%/*}" name="${service#*/}"
    ready="$(kubectl --context "${w[2]}" -n "$namespace" get endpointslices -l "kubernetes.io/service-name=$name" \
      -o 'jsonpath={.items[*].endpoints[*].addresses[0]}')"
    [ -z "$ready" ] || continue
    kubectl --context "${w[2]}" -n "$namespace" create -f - >/dev/null <<EOF
{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
 "metadata": {"name": "$name-planned-stand-in", "labels": {"kubernetes.io/service-name": "$name"}},
 "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.10"], "conditions": {"ready": true}}],
 "ports": [{"port": 9080, "protocol": "TCP"}]}
EOF
    stand_ins+=("${w[2]} $namespace endpointslice/$name-planned-stand-in")
    echo "stand-in: ${w[1]}: a ready endpoint of $service (planned there, no sample runs it)"
  done
done < <(grep '^  endpoints ' "$tree/doctor.sh" || true)

# The codes a text run of doctor.sh reported, each once, sorted.
codes() {
  sed -n 's/^error\[\([^]]*\)\].*/\1/p' "$out" | sort -u
}

# The findings of a --json run, each once, sorted: "CODE CLUSTER OBJECT" a line; a code given as
# "CODE * *" in ANY (a code that may be reported for several clusters and objects) as that.
findings_of() {
  python3 -c 'import json, sys
anywhere = set(sys.argv[1].split())
for line in sys.stdin:
    if line.startswith("{\"code\":"):
        f = json.loads(line)
        print(f["code"], "* *" if f["code"] in anywhere else f["cluster"] + " " + f["object"])' "$1" <"$out" |
    sort -u
}

# expect WHAT EXIT [FINDING...]: doctor.sh, in both formats, exits EXIT reporting exactly the
# FINDINGs ("CODE CLUSTER OBJECT", or "CODE * *" for any cluster and object), or nothing: the
# text run exactly their codes, the --json run exactly them.
expect() {
  local what="$1" exit="$2" format status mode all wanted_codes anywhere want got
  shift 2
  all="$(printf '%s\n' "$@" | sed '/^$/d' | sort -u)"
  wanted_codes="$(cut -d' ' -f1 <<<"$all" | sort -u)"
  anywhere="$(sed -n 's/^\([^ ]*\) \* \*$/\1/p' <<<"$all" | tr '\n' ' ')"
  for format in "" --json; do
    status=0 mode=replay
    [ -n "$format" ] || { mode=record && rm -f "$replay/answers/"*; }
    (cd "$tree" && PATH="$replay/bin:$PATH" MESHPLAN_REAL_TOOLS_REPLAY="$replay/answers" \
      MESHPLAN_REAL_TOOLS_REPLAY_MODE="$mode" bash doctor.sh ${format:+"$format"}) >"$out" 2>&1 || status=$?
    if [ -n "$format" ]; then
      got="$(findings_of "$anywhere")" want="$all"
    else
      got="$(codes)" want="$wanted_codes"
    fi
    if [ "$status" != "$exit" ] || [ "$got" != "$want" ]; then
      echo "FAIL $what: doctor.sh${format:+ $format} exited $status, reported [$(paste -sd, <<<"$got")], want $exit [$(paste -sd, <<<"$want")]"
      sed 's/^/    /' "$out"
      failed=1
      return 0
    fi
  done
  echo "ok   $what: ${wanted_codes:-no finding} (text and --json)" | paste -sd' '
}

# Every mutation is made before doctor.sh runs again, each on its own object, and each must be
# reported with its code for its cluster and object (mutate WHAT CODE CLUSTER OBJECT records it);
# they are undone together after that run, in reverse order.
expected=()
mutate() {
  expected+=("$2 $3 $4")
  echo "   mutated: $1 ($2)"
}

# The roots, against the install's CA directory: every primary's istiod publishes its cacerts
# root first (istiod CLUSTER CONTEXT ...).
roots=""
if [ -n "$other_ca" ] && ! grep -q '^\[mesh\.trust\]' "$MESHPLAN_REAL_TOOLS_PLAN"; then
  roots=1
  publish() {
    python3 "$here/trust.py" --plan "$MESHPLAN_REAL_TOOLS_PLAN" --publish "$1" \
      --pilot-discovery "$MESHPLAN_REAL_TOOLS_BIN/pilot-discovery" --ports "$MESHPLAN_REAL_TOOLS_ISTIOD_PORTS" \
      --work "$MESHPLAN_REAL_TOOLS_JOB/publish"
  }
  while IFS= read -r line; do
    mapfile -t w < <(xargs -n1 printf '%s\n' <<<"${line#  }")
    publish "${w[1]}"
  done < <(grep '^  istiod ' "$tree/doctor.sh")
fi

if [ -n "$roots" ]; then
  # Every run below compares the roots too: the mutations leave them alone but the first.
  export MESHPLAN_SKIP_VERIFY=0
  expect "doctor.sh on the clusters as installed, roots included" 0
else
  if [ -n "$other_ca" ]; then
    echo "skip root_mismatch: the plan has [mesh.trust] phases (check 9 runs them)"
  else
    echo "skip root_mismatch: no other CA directory given"
  fi
  expect "doctor.sh on the clusters as installed" 0
fi

# istiod CLUSTER CONTEXT ...: the first primary's cacerts from another root, published by its
# istiod into its cluster and its remotes (the code is reported for each ConfigMap it rewrote).
# First, while every remote secret is still there for istiod to follow.
root_context="" configmaps=()
if [ -n "$roots" ]; then
  mapfile -t w < <(call_of istiod)
  root_context="${w[2]}"
  while IFS= read -r context; do
    if save "$context" istio-system configmap/istio-ca-root-cert 2>/dev/null; then
      configmaps+=("$context")
    fi
  done < <(grep -oE "^if network_label '[^']*' '[^']*'" "$tree/doctor.sh" | cut -d"'" -f4)
  save "$root_context" istio-system secret/cacerts
  kubectl --context "$root_context" -n istio-system delete secret cacerts >/dev/null
  kubectl --context "$root_context" -n istio-system create secret generic cacerts \
    --from-file="$other_ca/${w[1]}/ca-cert.pem" --from-file="$other_ca/${w[1]}/ca-key.pem" \
    --from-file="$other_ca/${w[1]}/root-cert.pem" --from-file="$other_ca/${w[1]}/cert-chain.pem" >/dev/null
  publish "${w[1]}"
  mutate "${w[1]}: cacerts from another root, published by its istiod" meshplan::live::root_mismatch '*' '*'
fi

# network_label CLUSTER CONTEXT NETWORK
mapfile -t w < <(call_of network_label)
label=("${w[@]}")
if [ "${#label[@]}" -eq 4 ]; then
  kubectl --context "${label[2]}" label namespace istio-system topology.istio.io/network=mutated-network --overwrite >/dev/null
  mutate "${label[1]}: istio-system relabelled" meshplan::live::network_label "${label[1]}" namespace/istio-system
fi

# remote_secrets CLUSTER CONTEXT SECRET...
mapfile -t w < <(call_of remote_secrets)
secrets=("${w[@]}")
if [ "${#secrets[@]}" -ge 4 ]; then
  save "${secrets[2]}" istio-system "secret/${secrets[3]}"
  kubectl --context "${secrets[2]}" -n istio-system delete secret "${secrets[3]}" >/dev/null
  mutate "${secrets[1]}: remote secret ${secrets[3]} deleted" meshplan::live::remote_secret_missing "${secrets[1]}" "secret/${secrets[3]}"
else
  echo "skip remote_secret_missing: no primary watches another cluster"
fi
if [ "${#secrets[@]}" -ge 3 ]; then
  kubectl --context "${secrets[2]}" -n istio-system create secret generic istio-remote-secret-retired \
    --from-literal=retired=unused >/dev/null
  kubectl --context "${secrets[2]}" -n istio-system label secret istio-remote-secret-retired istio/multiCluster=true >/dev/null
  mutate "${secrets[1]}: a remote secret for a cluster not in the plan" meshplan::live::remote_secret_stale "${secrets[1]}" secret/istio-remote-secret-retired
fi

# address CLUSTER CONTEXT OBJECT JSONPATH PLANNED, on a cluster without MetalLB's controller.
address=()
patch_address() {
  kubectl --context "${address[2]}" -n istio-system patch "${address[3]}" --subresource=status --type=merge \
    -p "{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"$1\"}]}}}" >/dev/null
}
while IFS= read -r line; do
  mapfile -t w < <(xargs -n1 printf '%s\n' <<<"${line#  }")
  case "${w[3]}" in service/*) ;; *) continue ;; esac
  grep -qxF -- "${w[2]}" <<<"${MESHPLAN_REAL_TOOLS_METALLB_CONTEXTS:-}" && continue
  address=("${w[@]}")
  patch_address 192.0.2.99
  mutate "${w[1]}: ${w[3]}'s status patched to 192.0.2.99" meshplan::live::eastwest_address "${w[1]}" "${w[3]}"
  break
done < <(grep '^  address ' "$tree/doctor.sh" || true)
[ "${#address[@]}" -gt 0 ] || echo "skip eastwest_address: no east-west Service whose address a cloud assigns (MetalLB's controller would rewrite it)"

# metallb_pool CLUSTER CONTEXT NAMESPACE POOL ADDRESSES
mapfile -t w < <(call_of metallb_pool)
pool=("${w[@]}")
set_pool() {
  local json="" e
  for e in "$@"; do json+="${json:+,}\"$e\""; done
  kubectl --context "${pool[2]}" -n "${pool[3]}" patch "ipaddresspools.metallb.io/${pool[4]}" --type=merge \
    -p "{\"spec\":{\"addresses\":[$json]}}" >/dev/null
}
if [ "${#pool[@]}" -eq 6 ]; then
  read -ra entries <<<"${pool[5]}"
  # A range added, none taken away: every assigned address stays in the pool.
  set_pool "${entries[@]}" 192.0.2.0/30
  mutate "${pool[1]}: pool ${pool[4]} given 192.0.2.0/30 more" meshplan::live::metallb_pool "${pool[1]}" "ipaddresspools.metallb.io/${pool[4]}"
else
  echo "skip metallb_pool: no MetalLB pool"
fi

# gateway_api CLUSTER CONTEXT MINIMUM
mapfile -t w < <(call_of gateway_api)
gateway=("${w[@]}")
crd=crd/gateways.gateway.networking.k8s.io key=gateway.networking.k8s.io/bundle-version
if [ "${#gateway[@]}" -eq 4 ]; then
  was="$(kubectl --context "${gateway[2]}" get "$crd" -o "jsonpath={.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}")"
  # Just below the minimum: Gateway API v1.5's own ValidatingAdmissionPolicy
  # (safe-upgrades.gateway.networking.k8s.io) refuses a bundle-version before v1.5.0.
  IFS=. read -r major minor patch <<<"${gateway[3]#v}"
  if [ "${patch%%-*}" -gt 0 ]; then
    lower="v$major.$minor.$((${patch%%-*} - 1))"
  else
    lower="v$major.$((minor - 1)).0"
  fi
  kubectl --context "${gateway[2]}" annotate "$crd" "$key=$lower" --overwrite >/dev/null
  mutate "${gateway[1]}: Gateway API bundle-version lowered to $lower" meshplan::live::gateway_api_version "${gateway[1]}" "$crd"
else
  echo "skip gateway_api_version: the plan needs no Gateway API CRDs"
fi

# sample_deployments CLUSTER CONTEXT NAMESPACE PLANNED
mapfile -t w < <(grep -m1 -E "^  sample_deployments '[^']*' '[^']*' '[^']*' '[^']+" "$tree/doctor.sh" |
  sed 's/^  //' | xargs -n1 printf '%s\n')
placement=("${w[@]}")
if [ "${#placement[@]}" -eq 5 ]; then
  deployment="deployment/${placement[4]%% *}"
  save "${placement[2]}" "${placement[3]}" "$deployment"
  kubectl --context "${placement[2]}" -n "${placement[3]}" delete "$deployment" >/dev/null
  mutate "${placement[1]}: $deployment deleted" meshplan::live::placement "${placement[1]}" "$deployment"
else
  echo "skip placement: no sample Deployment"
fi

if [ "${#expected[@]}" -gt 0 ]; then
  expect "doctor.sh with all ${#expected[@]} mutations at once, each for its cluster and object" 1 "${expected[@]}"
fi

# Every mutation undone, in reverse order.
[ "${#placement[@]}" -ne 5 ] || restore "${placement[2]}" "${placement[3]}" "$deployment"
[ "${#gateway[@]}" -ne 4 ] || kubectl --context "${gateway[2]}" annotate "$crd" "$key=$was" --overwrite >/dev/null
[ "${#pool[@]}" -ne 6 ] || set_pool "${entries[@]}"
[ "${#address[@]}" -eq 0 ] || patch_address "${address[5]}"
[ "${#secrets[@]}" -lt 3 ] || kubectl --context "${secrets[2]}" -n istio-system delete secret istio-remote-secret-retired >/dev/null
[ "${#secrets[@]}" -lt 4 ] || restore "${secrets[2]}" istio-system "secret/${secrets[3]}"
[ "${#label[@]}" -ne 4 ] || kubectl --context "${label[2]}" label namespace istio-system "topology.istio.io/network=${label[3]}" --overwrite >/dev/null
if [ -n "$root_context" ]; then
  restore "$root_context" istio-system secret/cacerts
  for context in "${configmaps[@]}"; do
    restore "$context" istio-system configmap/istio-ca-root-cert
  done
fi

if [ -n "$roots" ]; then
  expect "doctor.sh after every mutation was undone, roots included" 0
else
  expect "doctor.sh after every mutation was undone" 0
fi
for stand_in in "${stand_ins[@]}"; do
  read -r context namespace object <<<"$stand_in"
  kubectl --context "$context" -n "$namespace" delete "$object" >/dev/null
done
exit "$failed"
