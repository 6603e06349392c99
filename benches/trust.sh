#!/usr/bin/env bash
# Times `meshplan certs` and `meshplan check --certs` of every phase of a root rotation
# (A -> A+B -> B, the four phases of tests/fixtures/trust/rotation.toml) on a synthetic mesh of
# CLUSTERS primaries, ECDSA P-256 (issue 26's target: check --certs of every phase for 100
# clusters under 2 s). Prints wall-clock seconds; asserts nothing about them.
#
# Usage: benches/trust.sh [CLUSTERS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
clusters="${1:-100}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin meshplan --example synthetic_plan
meshplan="$PWD/target/release/meshplan"
cargo run --release --quiet --example synthetic_plan -- all-primaries "$clusters" > "$work/plan.toml"
sed -n '/^\[mesh.trust\]/,$p' tests/fixtures/trust/rotation.toml >> "$work/plan.toml"

seconds() {
  local start end
  start="$(date +%s.%N)"
  "$@" >/dev/null 2>&1
  end="$(date +%s.%N)"
  python3 -c "print(f'{$end - $start:.2f}')"
}

echo "cores: $(nproc); clusters: $clusters; phases: 4 (2 roots, $((clusters * 2)) intermediates)"
echo "meshplan certs, ECDSA P-256:              $(seconds "$meshplan" certs -q "$work/plan.toml" --out "$work/ca" --key-algorithm ecdsa-p256) s"
"$meshplan" check -q "$work/plan.toml" --certs "$work/ca"
echo "meshplan check --certs, every phase:      $(seconds "$meshplan" check -q "$work/plan.toml" --certs "$work/ca") s"
echo "meshplan check (plan only):               $(seconds "$meshplan" check -q "$work/plan.toml") s"
