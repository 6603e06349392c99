#!/usr/bin/env bash
# Times `meshplan certs` and `meshplan check --certs` on a synthetic 100-cluster plan (every
# cluster gets an intermediate, so 101 keys: the root and 100 intermediates), with RSA 4096
# (the default) and ECDSA P-256. Key generation runs on every core. Prints wall-clock seconds.
#
# Usage: benches/certs.sh [CLUSTERS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
clusters="${1:-100}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin meshplan --example synthetic_plan
meshplan="$PWD/target/release/meshplan"
cargo run --release --quiet --example synthetic_plan -- "$clusters" "$clusters" 4 > "$work/plan.toml"

seconds() {
  local start end
  start="$(date +%s.%N)"
  "$@" >/dev/null 2>&1
  end="$(date +%s.%N)"
  python3 -c "print(f'{$end - $start:.2f}')"
}

echo "cores: $(nproc); clusters: $clusters"
echo "meshplan certs, RSA 4096:          $(seconds "$meshplan" certs -q "$work/plan.toml" --out "$work/rsa") s"
echo "meshplan certs, ECDSA P-256:       $(seconds "$meshplan" certs -q "$work/plan.toml" --out "$work/ec" --key-algorithm ecdsa-p256) s"
echo "meshplan certs again (no change):  $(seconds "$meshplan" certs -q "$work/plan.toml" --out "$work/rsa") s"
echo "meshplan check --certs, RSA:       $(seconds "$meshplan" check -q "$work/plan.toml" --certs "$work/rsa") s"
echo "meshplan check --certs, ECDSA:     $(seconds "$meshplan" check -q "$work/plan.toml" --certs "$work/ec") s"
echo "meshplan check (plan only):        $(seconds "$meshplan" check -q "$work/plan.toml") s"
