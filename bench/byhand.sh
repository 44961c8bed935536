#!/usr/bin/env bash
# The same work as `memgate check DIR`, done by hand: build the service,
# start it, load it with the vegeta command line at the same rate for the
# warm-up plus the window, and sample pprof with curl once a second. What
# a human would still have to do after this (read 50 heap dumps and decide)
# is not timed. bench/timing runs it beside memgate; it prints its phases'
# times as "phase seconds" lines.
#
#   bench/byhand.sh DIR RATE SECONDS PORT VEGETA OUTDIR
set -euo pipefail
dir=$1 rate=$2 seconds=$3 port=$4 vegeta=$5 out=$6
mkdir -p "$out"
now() { date +%s.%N; }
t0=$(now)
(cd "$dir" && go build -o "$out/service" .)
t1=$(now)
PORT=$port "$out/service" >"$out/service.log" 2>&1 &
svc=$!
trap 'kill $svc 2>/dev/null || true; kill $sampler 2>/dev/null || true' EXIT
until curl -fs -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
t2=$(now)
(
  i=0
  while true; do
    curl -fs -o "$out/heap-$i.txt" "http://127.0.0.1:$port/debug/pprof/heap?debug=1" || true
    curl -fs -o "$out/goroutine-$i.txt" "http://127.0.0.1:$port/debug/pprof/goroutine?debug=1" || true
    i=$((i + 1))
    sleep 1
  done
) &
sampler=$!
echo "GET http://127.0.0.1:$port/" | "$vegeta" attack -rate "$rate/s" -duration "${seconds}s" >"$out/results.bin"
t3=$(now)
kill $sampler 2>/dev/null || true
"$vegeta" report <"$out/results.bin" >"$out/report.txt"
kill $svc 2>/dev/null || true
wait $svc 2>/dev/null || true
t4=$(now)
echo "build $(awk "BEGIN{print $t1-$t0}")"
echo "start $(awk "BEGIN{print $t2-$t1}")"
echo "load $(awk "BEGIN{print $t3-$t2}")"
echo "total $(awk "BEGIN{print $t4-$t0}")"
echo "samples $(ls "$out"/heap-*.txt | wc -l)"
