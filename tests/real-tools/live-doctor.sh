#!/usr/bin/env bash
# Check 6 of run.sh: the tree's doctor.sh against the API servers the install procedure just ran
# on. Usage: live-doctor.sh TREE (kubectl on PATH must be the real one, not the stubs).
#
# doctor.sh must pass on the clusters as installed. Then, one at a time, each mutation below is
# made on a live object, doctor.sh must report exactly its code and nothing else (human text and
# --json, exit 1), and the object is restored; doctor.sh must pass again at the end:
#   - istio-system relabelled with another network          meshplan::live::network_label
#   - a primary's remote secret deleted                     meshplan::live::remote_secret_missing
#   - a remote secret for a cluster not in the plan         meshplan::live::remote_secret_stale
#   - the east-west Service's status patched to another IP  meshplan::live::eastwest_address
#   - a MetalLB pool given one more range                   meshplan::live::metallb_pool
#   - the Gateway API CRDs' bundle-version lowered          meshplan::live::gateway_api_version
#     (to just below the plan's: v1.5's CRDs refuse anything before v1.5.0)
# A mutation whose object the plan does not have is skipped (and says so). The east-west address
# is mutated only where no MetalLB controller runs (the cloud stand-in's clusters): MetalLB's
# controller would write its own address back at once. Where the mutated values come from: the
# calls doctor.sh itself makes (its per-cluster lines), so this knows nothing of the plan format.
#
# MESHPLAN_SKIP_VERIFY=1 throughout: no istiod publishes istio-ca-root-cert on these servers, so
# verify-trust.sh's half (meshplan::live::root_mismatch) is proved by tests/doctor.rs only.
#
# Each pair of runs (text, then --json) is on one state of the servers: the --json run is given the
# text run's kubectl answers (replay-kubectl.sh), so the two formats are of the same findings.
set -euo pipefail
tree="$1"
export MESHPLAN_SKIP_VERIFY=1
failed=0
out="$(mktemp)"
replay="$(mktemp -d)"
trap 'rm -rf "$out" "$replay"' EXIT
mkdir "$replay/bin" "$replay/answers"
ln -s "$(cd "$(dirname "$0")" && pwd)/replay-kubectl.sh" "$replay/bin/kubectl"

# The words of doctor.sh's first call line starting with FUNCTION (shell-quoted words), one a
# line; nothing when it has none.
call_of() {
  local line
  line="$(grep -m1 -E "^(  |if )$1 " "$tree/doctor.sh")" || return 0
  line="${line#if }" line="${line#  }"
  xargs -n1 printf '%s\n' <<<"${line%; then}"
}

# The codes a run of doctor.sh reported, in order, one a line.
codes() {
  if [ "$1" = --json ]; then
    sed -n 's/^{"code":"\([^"]*\)".*/\1/p' "$out"
  else
    sed -n 's/^error\[\([^]]*\)\].*/\1/p' "$out"
  fi
}

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

expect "doctor.sh on the clusters as installed" 0

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
  saved="$(mktemp)"
  kubectl --context "${w[2]}" -n istio-system get secret "${w[3]}" -o json |
    python3 -c 'import json, sys
o = json.load(sys.stdin)
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    o["metadata"].pop(k, None)
json.dump(o, sys.stdout)' >"$saved"
  kubectl --context "${w[2]}" -n istio-system delete secret "${w[3]}" >/dev/null
  expect "${w[1]}: remote secret ${w[3]} deleted" 1 meshplan::live::remote_secret_missing
  kubectl --context "${w[2]}" -n istio-system create -f "$saved" >/dev/null
  rm -f "$saved"
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

expect "doctor.sh after every mutation was undone" 0
exit "$failed"
