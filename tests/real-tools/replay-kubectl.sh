#!/usr/bin/env bash
# kubectl for live-doctor.sh's pair of doctor.sh runs (text, then --json) on one state of the
# servers: the text run's calls go to the real kubectl and each answer (stdout, stderr, exit
# status) is recorded under its argument list; the --json run that follows, with nothing changed
# in between, is given the recorded answer of each same call. So both formats are produced by
# doctor.sh from the same answers, and the second run costs no kubectl process (a kubectl call is
# ~0.06 s of CPU; docs/performance.md). A call the text run did not make goes to the real kubectl.
# MESHPLAN_REAL_TOOLS_REPLAY: the record's directory; MESHPLAN_REAL_TOOLS_REPLAY_MODE: record|replay.
# Written with bash builtins only (no sha256sum, cut or cat): doctor.sh calls it about 20 times a
# run, and a replayed call took 6.9 ms of CPU with those processes, 1.2 ms without.
set -uo pipefail
real="${MESHPLAN_REAL_TOOLS_BIN:?}/kubectl"
dir="${MESHPLAN_REAL_TOOLS_REPLAY:?}"

# The record's name for this argument list: the arguments shell-quoted (so no two lists share
# it), with % and / escaped; a list too long for a file name is named by its SHA-256.
printf -v name '%q ' "$@"
name="${name//%/%25}"
name="${name//\//%2F}"
if [ "${#name}" -gt 200 ]; then
  name="$(printf '%s\0' "$@" | sha256sum)"
  name="${name%% *}"
fi
key="$dir/$name"

# emit FILE [>&2]: FILE's bytes, unchanged (read -d '' keeps every newline).
emit() {
  local content=""
  IFS= read -r -d '' content <"$1" || true
  printf '%s' "$content"
}

if [ "${MESHPLAN_REAL_TOOLS_REPLAY_MODE:-}" = replay ]; then
  if [ -f "$key.status" ]; then
    emit "$key.out"
    emit "$key.err" >&2
    read -r status <"$key.status"
    exit "$status"
  fi
  echo "$*" >>"$dir/not-recorded"
  exec "$real" "$@"
fi
status=0
"$real" "$@" >"$key.out" 2>"$key.err" || status=$?
echo "$status" >"$key.status"
emit "$key.out"
emit "$key.err" >&2
exit "$status"
