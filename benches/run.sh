#!/usr/bin/env bash
# Benchmarks meshplan on synthetic plans (see tests/support/synthetic.rs) with hyperfine:
# check, build (beside `cp -r` of the tree it wrote) and render times (median, milliseconds),
# peak memory, and `meshplan render
# --cluster` against `kubectl kustomize` of the same cluster's
# directory, in one run. Prints a Markdown table. `cargo bench --bench stages` times the
# library's stages instead.
#
# Usage: benches/run.sh [RUNS]   (RUNS defaults to 10; needs hyperfine, python3 and
#                                 /usr/bin/time; kubectl optional)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
for tool in hyperfine python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "benches/run.sh needs $tool (apt-get install hyperfine time)" >&2; exit 2; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin meshplan --example synthetic_plan
meshplan="$PWD/target/release/meshplan"

# The median in milliseconds of the benchmarks hyperfine ran (one, or one per `{run}`).
median_ms() {
  python3 -c 'import json, statistics, sys
times = [t for r in json.load(open(sys.argv[1]))["results"] for t in r["times"]]
print(round(statistics.median(times) * 1000))' "$1"
}

# Median milliseconds of RUNS runs of a command line.
time_ms() {
  hyperfine -N --style none --warmup 2 --runs "$runs" --export-json "$work/h.json" "$1" >/dev/null 2>>"$work/warnings"
  median_ms "$work/h.json"
}

# The CPU milliseconds (user + system, hyperfine's means) of the last `time_ms` run: issue 28
# compares `render` with `kubectl kustomize` on CPU, which a shared machine disturbs less.
cpu_ms() {
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(round((r["user"] + r["system"]) * 1000))' "$work/h.json"
}

# A first build, RUNS times, each into a new directory: removing the last tree before the next
# build would time the filesystem's handling of 10,000 just-deleted inodes (docs/performance.md).
first_build_ms() {
  hyperfine -N --style none --runs 1 --parameter-scan run 1 "$runs" \
    --export-json "$work/h.json" "$meshplan build -q $1 -o $2-{run}" >/dev/null 2>>"$work/warnings"
  median_ms "$work/h.json"
}

# `cp -r` of the first build's tree, RUNS times, each into a new directory: the reference a
# build is measured against (issue 28: at most twice the cost of writing its files).
first_copy_ms() {
  hyperfine -N --style none --runs 1 --parameter-scan run 1 "$runs" \
    --export-json "$work/h.json" "cp -r $1 $1-copy-{run}" >/dev/null 2>>"$work/warnings"
  median_ms "$work/h.json"
}

peak_mb() {
  /usr/bin/time -o "$work/time" -f '%M' "$@" >/dev/null 2>&1
  echo $(( $(tail -n 1 "$work/time") / 1024 ))
}

echo "| plan | lines | check ms | build ms | cp -r ms | rebuild ms | render ms | render cpu ms | kustomize ms | kustomize cpu ms | peak MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for shape in "10 500 2" "100 5000 10" "1000 50000 100"; do
  read -r clusters nodes networks <<<"$shape"
  plan="$work/plan-$clusters.toml"
  out="$work/out-$clusters"
  cargo run --release --quiet --example synthetic_plan -- "$clusters" "$nodes" "$networks" >"$plan"
  check="$(time_ms "$meshplan check -q $plan")"
  build="$(first_build_ms "$plan" "$out")"
  copy="$(first_copy_ms "$out-1")"
  rebuild="$(time_ms "$meshplan build -q $plan -o $out-1")"
  render="$(time_ms "$meshplan render -q $plan --cluster c7")"
  render_cpu="$(cpu_ms)"
  kustomize="n/a"
  kustomize_cpu="n/a"
  if command -v kubectl >/dev/null 2>&1; then
    kustomize="$(time_ms "kubectl kustomize $out-1/c7")"
    kustomize_cpu="$(cpu_ms)"
  fi
  peak=0
  for command in "check -q $plan" "build -q $plan -o $work/peak-$clusters" "render -q $plan --cluster c7"; do
    # shellcheck disable=SC2086 # the command is words
    mb="$(peak_mb "$meshplan" $command)"
    peak=$(( mb > peak ? mb : peak ))
  done
  echo "| $clusters clusters, $nodes nodes, $networks networks | $(wc -l <"$plan") | $check | $build | $copy | $rebuild | $render | $render_cpu | $kustomize | $kustomize_cpu | $peak |"
done

# `explain --without` on the largest plan with ten services per cluster (docs/performance.md).
plan="$work/plan-services.toml"
cargo run --release --quiet --example synthetic_plan -- 1000 50000 100 10000 >"$plan"
echo
echo "| plan | lines | explain --without c0 --without c1 ms | peak MB |"
echo "| --- | --- | --- | --- |"
without="$(time_ms "$meshplan explain -q $plan --without c0 --without c1")"
echo "| 1000 clusters, 50000 nodes, 100 networks, 10000 services | $(wc -l <"$plan") | $without | $(peak_mb "$meshplan" explain -q "$plan" --without c0 --without c1) |"
if grep -q outliers "$work/warnings" 2>/dev/null; then
  echo "(hyperfine saw statistical outliers in $(grep -c outliers "$work/warnings") of the series: the machine was not quiet)" >&2
fi
