#!/usr/bin/env bash
# The sandbox's cost to a gate: memgate before the sandbox (REV, default the
# commit before it) against this tree, alternating, N runs each after one
# unmeasured run each (which fills the caches), on examples/healthy-json with
# the default settings. Each run holds the machine-wide gate lock.
#   bench/sandbox-cost.sh [N] [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
rev=${2:-2fa1804}
out=bench/out/sandbox-cost
mkdir -p "$out"
old=$(mktemp -d)
git worktree add -q --detach "$old" "$rev"
trap 'git worktree remove --force "$old"' EXIT
(cd "$old" && go build -o "$PWD/../memgate-old" ./cmd/memgate) && mv "$old/../memgate-old" "$out/memgate-old"
go build -o "$out/memgate-new" ./cmd/memgate
lock="${TMPDIR:-/tmp}/memgate-gate-tests.lock"
one() { # name run#
  flock "$lock" "$out/memgate-$1" check --json "$out/$1-$2.json" examples/healthy-json >/dev/null 2>&1 || true
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); t=r["timings"]; print(sys.argv[2], sys.argv[3], r["verdict"], "build %.2f start %.2f total %.2f" % (t["build"], t["start"], t["total"]))' "$out/$1-$2.json" "$1" "$2"
}
one old warm; one new warm
for i in $(seq 1 "$n"); do
  if [ $((i % 2)) = 1 ]; then one old "$i"; one new "$i"; else one new "$i"; one old "$i"; fi
done | tee "$out/results.txt"
