#!/bin/sh
# bench_flood.sh: do one client's huge request bodies stall everyone's
# streams?  Serves the model through nginx (conf.d/run.conf.in, one
# client_max_body_size of MAX_BODY for every location, so that the bodies
# reach the engine) and measures the inter-token latency (p99) of STREAMS
# open streams with glm-bench: quiet, and while FLOODERS clients post
# FLOOD_MB bodies to FLOOD_OP (/detokenize: an id list; /tokenize: a
# prompt) over and over, each posting again as soon as it is answered.
#
# Machines here are noisy, so quiet and flooded runs alternate, ROUNDS
# times, and the medians are compared.  A third run of each round floods
# /sink instead, a plain nginx location that reads and drops the same
# bodies: what receiving those bytes costs stock nginx on this machine, the
# floor under any module.  Prints
#   FLOOD itl_p99_quiet_ms=<q> itl_p99_flooded_ms=<f> ratio=<f/q>
#   FLOOD_FLOOR itl_p99_sink_flooded_ms=<s> ratio=<s/q>
# and the status counts of the flood's answers.  Ratios, never asserted.
#
# The default flood is one client, as in the attack it measures (one
# client's bodies must not stall the others); FLOODERS=3 floods harder.  On
# a machine with few cores the flood's clients take cores the server is
# measured on: FLOOD_NICE=19 makes them stand for clients on other machines.
#   MODEL (default the tiny fixture), STREAMS (10), INPUT_LEN (64),
#   OUTPUT_LEN (512), ENGINE_THREADS (1, as bench_overhead.sh), FLOODERS (1),
#   FLOOD_MB (14), FLOOD_OP (detokenize), MAX_BODY (32m), ROUNDS (3),
#   FLOOD_NICE (0), ENGINE_ARGS (extra glm-engine serve options)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${MODEL:-$ROOT/t/fixtures/glm45-air-tiny}
STREAMS=${STREAMS:-10}
IN=${INPUT_LEN:-64}
OUT=${OUTPUT_LEN:-512}
THREADS=${ENGINE_THREADS:-1}
FLOODERS=${FLOODERS:-1}
MB=${FLOOD_MB:-14}
OP=${FLOOD_OP:-detokenize}
MAX_BODY=${MAX_BODY:-32m}
ROUNDS=${ROUNDS:-3}
FLOOD_NICE=${FLOOD_NICE:-0}
WORK=$(mktemp -d)
chmod 755 "$WORK"     # nginx workers (nobody) must reach the engine socket
PORT=$((20000 + $$ % 20000))
NGX=; ENG=; FLOOD=
trap 'kill $FLOOD $NGX $ENG 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# the flood body: MB megabytes of ids (or of prompt text)
python3 - "$WORK/flood.json" "$MB" "$OP" <<'PY'
import sys
path, mb, op = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = mb * 1000 * 1000
if op == "detokenize":
    # ids every vocabulary has (the tiny fixture's is 3072), so that the
    # engine reads up to max-model-len of them before its 413
    ids = ("%d," % (1000 + i % 2000) for i in range(n // 5))
    body = '{"tokens":[' + "".join(ids).rstrip(",") + "]}"
else:
    body = '{"prompt":"' + ("flood of words " * (n // 15)) + '"}'
open(path, "w").write(body)
PY

. "$ROOT/t/bench/serve_lib.sh"
SERVE_LOCATIONS='location = /sink { return 204; }'
# shellcheck disable=SC2086
serve_start "$STREAMS" ${ENGINE_ARGS:-}

# itl_p99 NAME: one glm-bench run; its p99 ITL in ms on stdout
itl_p99() {
    "$ROOT/build/glm-bench" --base-url "http://127.0.0.1:$PORT" --model bench \
        --tokenizer "$MODEL" --input-len "$IN" --output-len "$OUT" \
        --num-prompts "$((STREAMS * 2))" --max-concurrency "$STREAMS" \
        --progress-interval 0 --ready-check-timeout-sec 0 >"$WORK/bench_$1.txt" 2>&1
    if ! grep -q '^Failed requests: *0 *$' "$WORK/bench_$1.txt"; then
        echo "bench_flood: $1: requests failed:" >&2
        grep -E '^(Successful|Failed)' "$WORK/bench_$1.txt" >&2
        exit 1
    fi
    sed -n 's/.* p99_itl_ms=\([0-9.]*\).*/\1/p' "$WORK/bench_$1.txt"
}

# flood_start PATH: FLOODERS clients post the body to PATH again and again
flood_start() {
    for _f in $(seq "$FLOODERS"); do
        ( while :; do
              nice -n "$FLOOD_NICE" curl -s -o /dev/null -w '%{http_code}\n' \
                  -H 'Content-Type: application/json' \
                  --data-binary @"$WORK/flood.json" "http://127.0.0.1:$PORT$1" \
                  >>"$WORK/codes_${1#/}" || true
          done ) &
        FLOOD="$FLOOD $!"
    done
    sleep 1
}

flood_stop() {
    # shellcheck disable=SC2086
    kill $FLOOD 2>/dev/null; wait $FLOOD 2>/dev/null || true
    FLOOD=
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

: >"$WORK/quiet"; : >"$WORK/flooded"; : >"$WORK/sink"
for round in $(seq "$ROUNDS"); do
    itl_p99 "quiet$round" >>"$WORK/quiet"
    flood_start "/$OP"
    itl_p99 "flooded$round" >>"$WORK/flooded"
    flood_stop
    flood_start /sink
    itl_p99 "sink$round" >>"$WORK/sink"
    flood_stop
    echo "round $round: itl_p99_ms quiet=$(sed -n "${round}p" "$WORK/quiet")" \
         "flooded=$(sed -n "${round}p" "$WORK/flooded")" \
         "sink_flooded=$(sed -n "${round}p" "$WORK/sink")" >&2
done

echo "flood: $(sort "$WORK/codes_$OP" | uniq -c | tr '\n' ' ')(status counts of $MB MB /$OP bodies, $FLOODERS clients at nice $FLOOD_NICE)"
echo "sink: $(sort "$WORK/codes_sink" | uniq -c | tr '\n' ' ')(status counts of the same bodies to /sink)"
q=$(median <"$WORK/quiet"); f=$(median <"$WORK/flooded"); s=$(median <"$WORK/sink")
awk -v q="$q" -v f="$f" -v s="$s" 'BEGIN {
    printf "FLOOD itl_p99_quiet_ms=%.2f itl_p99_flooded_ms=%.2f ratio=%.2f\n", q, f, f / q
    printf "FLOOD_FLOOR itl_p99_sink_flooded_ms=%.2f ratio=%.2f\n", s, s / q }'
