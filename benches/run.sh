#!/usr/bin/env bash
# Benchmarks meshplan on synthetic plans (see tests/support/synthetic.rs): check, build and
# render times (median of RUNS, in milliseconds) and peak memory, and `meshplan render
# --cluster` (without and with its cache) against `kubectl kustomize` of the same cluster's
# directory. Prints a Markdown table. `cargo bench --bench stages` times the library's stages.
#
# Usage: benches/run.sh [RUNS]     (RUNS defaults to 5; needs /usr/bin/time; kubectl optional)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export MESHPLAN_CACHE_DIR="$work/cache"

cargo build --release --quiet --bin meshplan --example synthetic_plan
meshplan="$PWD/target/release/meshplan"

# median wall milliseconds and max peak RSS (MB) of RUNS runs of a command; with FRESH=DIR
# set, DIR is removed before every run (so each build is a first build, not a no-op rebuild)
measure() {
  local times=() peak=0 start end rss
  for _ in $(seq "$runs"); do
    if [ -n "${FRESH:-}" ]; then rm -rf "$FRESH"; fi
    start="$(date +%s%N)"
    /usr/bin/time -o "$work/time" -f '%M' "$@" >/dev/null 2>&1
    end="$(date +%s%N)"
    times+=("$(( (end - start) / 1000000 ))")
    rss="$(tail -n 1 "$work/time")"
    peak=$(( rss > peak ? rss : peak ))
  done
  local median
  median="$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  echo "$median $(( peak / 1024 ))"
}

echo "| plan | lines | check ms | build ms | rebuild ms | render ms | cached render ms | kustomize ms | peak MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for shape in "10 500 2" "100 5000 10" "1000 50000 100"; do
  read -r clusters nodes networks <<<"$shape"
  plan="$work/plan-$clusters.toml"
  out="$work/out-$clusters"
  cargo run --release --quiet --example synthetic_plan -- "$clusters" "$nodes" "$networks" >"$plan"
  read -r check check_mb < <(measure "$meshplan" check -q "$plan")
  read -r build build_mb < <(FRESH="$out" measure "$meshplan" build -q "$plan" -o "$out")
  read -r rebuild _ < <(measure "$meshplan" build -q "$plan" -o "$out")
  read -r render render_mb < <(measure "$meshplan" render -q --no-cache "$plan" --cluster c7)
  "$meshplan" render -q "$plan" --cluster c7 >/dev/null # fills the cache
  read -r cached _ < <(measure "$meshplan" render -q "$plan" --cluster c7)
  kustomize="n/a"
  if command -v kubectl >/dev/null 2>&1; then
    read -r kustomize _ < <(measure kubectl kustomize "$out/c7")
  fi
  peak=$(( check_mb > build_mb ? check_mb : build_mb ))
  peak=$(( render_mb > peak ? render_mb : peak ))
  echo "| $clusters clusters, $nodes nodes, $networks networks | $(wc -l <"$plan") | $check | $build | $rebuild | $render | $cached | $kustomize | $peak |"
done
