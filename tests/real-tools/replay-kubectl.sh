#!/usr/bin/env bash
# kubectl for live-doctor.sh's pair of doctor.sh runs (text, then --json) on one state of the
# servers: the text run's calls go to the real kubectl and each answer (stdout, stderr, exit
# status) is recorded under its argument list; the --json run that follows, with nothing changed
# in between, is given the recorded answer of each same call. So both formats are produced by
# doctor.sh from the same answers, and the second run costs no kubectl process (a kubectl call is
# ~0.06 s of CPU; docs/performance.md). A call the text run did not make goes to the real kubectl.
# MESHPLAN_REAL_TOOLS_REPLAY: the record's directory; MESHPLAN_REAL_TOOLS_REPLAY_MODE: record|replay.
set -uo pipefail
real="${MESHPLAN_REAL_TOOLS_BIN:?}/kubectl"
dir="${MESHPLAN_REAL_TOOLS_REPLAY:?}"
key="$dir/$(printf '%s\0' "$@" | sha256sum | cut -c1-32)"
if [ "${MESHPLAN_REAL_TOOLS_REPLAY_MODE:-}" = replay ]; then
  if [ -f "$key.status" ]; then
    cat "$key.out"
    cat "$key.err" >&2
    exit "$(cat "$key.status")"
  fi
  echo "$*" >>"$dir/not-recorded"
  exec "$real" "$@"
fi
status=0
"$real" "$@" >"$key.out" 2>"$key.err" || status=$?
echo "$status" >"$key.status"
cat "$key.out"
cat "$key.err" >&2
exit "$status"
