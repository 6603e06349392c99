#!/usr/bin/env bash
# Check 6 of run.sh: the tree's doctor.sh against the API servers the install procedure just ran
# on. Usage: live-doctor.sh TREE [OTHER_CA] (kubectl on PATH must be the real one, not the
# stubs; OTHER_CA: a CA directory of another root, laid out as CERTS_DIR, for the roots' mutation).
#
# doctor.sh must pass on the clusters as installed. Then, one at a time, each mutation below is
# made on a live object, doctor.sh must report exactly its code and nothing else (human text and
# --json, exit 1; the code may be reported for several objects), and the object is restored;
# doctor.sh must pass again at the end:
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
# with MESHPLAN_SKIP_VERIFY=1, as the other mutations do. MESHPLAN_SKIP_REMOTE_CLUSTERS=1
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

# The codes a run of doctor.sh reported, each once, sorted.
codes() {
  if [ "$1" = --json ]; then
    sed -n 's/^{"code":"\([^"]*\)".*/\1/p' "$out" | sort -u
  else
    sed -n 's/^error\[\([^]]*\)\].*/\1/p' "$out" | sort -u
  fi
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

# expect WHAT EXIT [CODE]: doctor.sh, in both formats, exits EXIT reporting exactly CODE (or
# nothing).
expect() {
  local what="$1" exit="$2" code="${3:-}" format status mode
  for format in "" --json; do
    status=0 mode=replay
    [ -n "$format" ] || { mode=record && rm -f "$replay/answers/"*; }
    (cd "$tree" && PATH="$replay/bin:$PATH" MESHPLAN_REAL_TOOLS_REPLAY="$replay/answers" \
      MESHPLAN_REAL_TOOLS_REPLAY_MODE="$mode" bash doctor.sh ${format:+"$format"}) >"$out" 2>&1 || status=$?
    if [ "$status" != "$exit" ] || [ "$(codes "$format")" != "$code" ]; then
      echo "FAIL $what: doctor.sh${format:+ $format} exited $status, reported [$(codes "$format" | tr '\n' ' ')], want $exit [$code]"
      sed 's/^/    /' "$out"
      failed=1
      return 0
    fi
  done
  echo "ok   $what: ${code:-no finding} (text and --json)"
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
  MESHPLAN_SKIP_VERIFY=0 expect "doctor.sh on the clusters as installed, roots included" 0
  # istiod CLUSTER CONTEXT ...: the first primary's cacerts from another root, published.
  mapfile -t w < <(call_of istiod)
  configmaps=()
  while IFS= read -r context; do
    if kubectl --context "$context" -n istio-system get configmap istio-ca-root-cert >/dev/null 2>&1; then
      save "$context" istio-system configmap/istio-ca-root-cert
      configmaps+=("$context")
    fi
  done < <(grep -oE "^if network_label '[^']*' '[^']*'" "$tree/doctor.sh" | cut -d"'" -f4)
  save "${w[2]}" istio-system secret/cacerts
  kubectl --context "${w[2]}" -n istio-system delete secret cacerts >/dev/null
  kubectl --context "${w[2]}" -n istio-system create secret generic cacerts \
    --from-file="$other_ca/${w[1]}/ca-cert.pem" --from-file="$other_ca/${w[1]}/ca-key.pem" \
    --from-file="$other_ca/${w[1]}/root-cert.pem" --from-file="$other_ca/${w[1]}/cert-chain.pem" >/dev/null
  publish "${w[1]}"
  MESHPLAN_SKIP_VERIFY=0 expect "${w[1]}: cacerts from another root, published by its istiod" 1 meshplan::live::root_mismatch
  restore "${w[2]}" istio-system secret/cacerts
  for context in "${configmaps[@]}"; do
    restore "$context" istio-system configmap/istio-ca-root-cert
  done
else
  if [ -n "$other_ca" ]; then
    echo "skip root_mismatch: the plan has [mesh.trust] phases (check 9 runs them)"
  else
    echo "skip root_mismatch: no other CA directory given"
  fi
  expect "doctor.sh on the clusters as installed" 0
fi

# network_label CLUSTER CONTEXT NETWORK
mapfile -t w < <(call_of network_label)
if [ "${#w[@]}" -eq 4 ]; then
  kubectl --context "${w[2]}" label namespace istio-system topology.istio.io/network=mutated-network --overwrite >/dev/null
  expect "${w[1]}: istio-system relabelled" 1 meshplan::live::network_label
  kubectl --context "${w[2]}" label namespace istio-system "topology.istio.io/network=${w[3]}" --overwrite >/dev/null
fi

# remote_secrets CLUSTER CONTEXT SECRET...
mapfile -t w < <(call_of remote_secrets)
if [ "${#w[@]}" -ge 4 ]; then
  save "${w[2]}" istio-system "secret/${w[3]}"
  kubectl --context "${w[2]}" -n istio-system delete secret "${w[3]}" >/dev/null
  expect "${w[1]}: remote secret ${w[3]} deleted" 1 meshplan::live::remote_secret_missing
  restore "${w[2]}" istio-system "secret/${w[3]}"
else
  echo "skip remote_secret_missing: no primary watches another cluster"
fi
if [ "${#w[@]}" -ge 3 ]; then
  kubectl --context "${w[2]}" -n istio-system create secret generic istio-remote-secret-retired \
    --from-literal=retired=unused >/dev/null
  kubectl --context "${w[2]}" -n istio-system label secret istio-remote-secret-retired istio/multiCluster=true >/dev/null
  expect "${w[1]}: a remote secret for a cluster not in the plan" 1 meshplan::live::remote_secret_stale
  kubectl --context "${w[2]}" -n istio-system delete secret istio-remote-secret-retired >/dev/null
fi

# address CLUSTER CONTEXT OBJECT JSONPATH PLANNED, on a cluster without MetalLB's controller.
done_address=""
while IFS= read -r line; do
  mapfile -t w < <(xargs -n1 printf '%s\n' <<<"${line#  }")
  case "${w[3]}" in service/*) ;; *) continue ;; esac
  grep -qxF -- "${w[2]}" <<<"${MESHPLAN_REAL_TOOLS_METALLB_CONTEXTS:-}" && continue
  patch() {
    kubectl --context "${w[2]}" -n istio-system patch "${w[3]}" --subresource=status --type=merge \
      -p "{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"$1\"}]}}}" >/dev/null
  }
  patch 192.0.2.99
  expect "${w[1]}: ${w[3]}'s status patched to 192.0.2.99" 1 meshplan::live::eastwest_address
  patch "${w[5]}"
  done_address=1
  break
done < <(grep '^  address ' "$tree/doctor.sh" || true)
[ -n "$done_address" ] || echo "skip eastwest_address: no east-west Service whose address a cloud assigns (MetalLB's controller would rewrite it)"

# metallb_pool CLUSTER CONTEXT NAMESPACE POOL ADDRESSES
mapfile -t w < <(call_of metallb_pool)
if [ "${#w[@]}" -eq 6 ]; then
  read -ra entries <<<"${w[5]}"
  pool() {
    local json="" e
    for e in "$@"; do json+="${json:+,}\"$e\""; done
    kubectl --context "${w[2]}" -n "${w[3]}" patch "ipaddresspools.metallb.io/${w[4]}" --type=merge \
      -p "{\"spec\":{\"addresses\":[$json]}}" >/dev/null
  }
  # A range added, none taken away: every assigned address stays in the pool.
  pool "${entries[@]}" 192.0.2.0/30
  expect "${w[1]}: pool ${w[4]} given 192.0.2.0/30 more" 1 meshplan::live::metallb_pool
  pool "${entries[@]}"
else
  echo "skip metallb_pool: no MetalLB pool"
fi

# gateway_api CLUSTER CONTEXT MINIMUM
mapfile -t w < <(call_of gateway_api)
if [ "${#w[@]}" -eq 4 ]; then
  crd=crd/gateways.gateway.networking.k8s.io key=gateway.networking.k8s.io/bundle-version
  was="$(kubectl --context "${w[2]}" get "$crd" -o "jsonpath={.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}")"
  # Just below the minimum: Gateway API v1.5's own ValidatingAdmissionPolicy
  # (safe-upgrades.gateway.networking.k8s.io) refuses a bundle-version before v1.5.0.
  IFS=. read -r major minor patch <<<"${w[3]#v}"
  if [ "${patch%%-*}" -gt 0 ]; then
    lower="v$major.$minor.$((${patch%%-*} - 1))"
  else
    lower="v$major.$((minor - 1)).0"
  fi
  kubectl --context "${w[2]}" annotate "$crd" "$key=$lower" --overwrite >/dev/null
  expect "${w[1]}: Gateway API bundle-version lowered to $lower" 1 meshplan::live::gateway_api_version
  kubectl --context "${w[2]}" annotate "$crd" "$key=$was" --overwrite >/dev/null
else
  echo "skip gateway_api_version: the plan needs no Gateway API CRDs"
fi

# sample_deployments CLUSTER CONTEXT NAMESPACE PLANNED
mapfile -t w < <(grep -m1 -E "^  sample_deployments '[^']*' '[^']*' '[^']*' '[^']+" "$tree/doctor.sh" |
  sed 's/^  //' | xargs -n1 printf '%s\n')
if [ "${#w[@]}" -eq 5 ]; then
  deployment="deployment/${w[4]%% *}"
  save "${w[2]}" "${w[3]}" "$deployment"
  kubectl --context "${w[2]}" -n "${w[3]}" delete "$deployment" >/dev/null
  expect "${w[1]}: $deployment deleted" 1 meshplan::live::placement
  restore "${w[2]}" "${w[3]}" "$deployment"
else
  echo "skip placement: no sample Deployment"
fi

if [ -n "$roots" ]; then
  MESHPLAN_SKIP_VERIFY=0 expect "doctor.sh after every mutation was undone, roots included" 0
else
  expect "doctor.sh after every mutation was undone" 0
fi
for stand_in in "${stand_ins[@]}"; do
  read -r context namespace object <<<"$stand_in"
  kubectl --context "$context" -n "$namespace" delete "$object" >/dev/null
done
exit "$failed"
