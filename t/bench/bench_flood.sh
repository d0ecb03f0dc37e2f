#!/bin/sh
# bench_flood.sh: does one client's huge request bodies stall everyone's
# streams?  Serves the model through nginx (conf.d/run.conf.in, one
# client_max_body_size of MAX_BODY for every location, so that the bodies
# reach the engine) and measures the inter-token latency of STREAMS open
# streams with glm-bench twice: quiet, then while FLOODERS clients post
# FLOOD_MB bodies to FLOOD_OP (/detokenize: an id list; /tokenize: a prompt)
# over and over; prints
#   FLOOD itl_p99_quiet_ms=<q> itl_p99_flooded_ms=<f> ratio=<f/q>
# (and the flood's own count of answered bodies).  A ratio, never asserted.
#   MODEL (default the tiny fixture), STREAMS (10), INPUT_LEN (64),
#   OUTPUT_LEN (512), ENGINE_THREADS (1, as bench_overhead.sh), FLOODERS (3),
#   FLOOD_MB (14), FLOOD_OP (detokenize), MAX_BODY (32m),
#   ENGINE_ARGS (extra glm-engine serve options, e.g. --intake-threads 0)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${MODEL:-$ROOT/t/fixtures/glm45-air-tiny}
STREAMS=${STREAMS:-10}
IN=${INPUT_LEN:-64}
OUT=${OUTPUT_LEN:-512}
THREADS=${ENGINE_THREADS:-1}
FLOODERS=${FLOODERS:-3}
MB=${FLOOD_MB:-14}
OP=${FLOOD_OP:-detokenize}
MAX_BODY=${MAX_BODY:-32m}
WORK=$(mktemp -d)
chmod 755 "$WORK"     # nginx workers (nobody) must reach the engine socket
PORT=$((20000 + $$ % 20000))
NGX=; ENG=; FLOOD=
trap 'kill $FLOOD $NGX $ENG 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

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
# shellcheck disable=SC2086
serve_start "$STREAMS" ${ENGINE_ARGS:-}

itl_p99() {
    "$ROOT/build/glm-bench" --base-url "http://127.0.0.1:$PORT" --model bench \
        --tokenizer "$MODEL" --input-len "$IN" --output-len "$OUT" \
        --num-prompts "$((STREAMS * 2))" --max-concurrency "$STREAMS" \
        --progress-interval 0 --ready-check-timeout-sec 0 >"$WORK/bench_$1.txt"
    grep -E '^(Successful|Failed)' "$WORK/bench_$1.txt" | sed "s/^/$1: /" >&2
    sed -n 's/.* p99_itl_ms=\([0-9.]*\).*/\1/p' "$WORK/bench_$1.txt"
}

quiet=$(itl_p99 quiet)

# the flood: each client posts the body again as soon as it is answered
: >"$WORK/flood.codes"
for f in $(seq "$FLOODERS"); do
    ( while :; do
          curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
              --data-binary @"$WORK/flood.json" "http://127.0.0.1:$PORT/$OP" \
              >>"$WORK/flood.codes" || true
      done ) &
    FLOOD="$FLOOD $!"
done
sleep 1
flooded=$(itl_p99 flooded)
kill $FLOOD 2>/dev/null; wait $FLOOD 2>/dev/null || true
FLOOD=
echo "flood: $(sort "$WORK/flood.codes" | uniq -c | tr '\n' ' ')(status counts of $MB MB /$OP bodies)"
awk -v q="$quiet" -v f="$flooded" \
    'BEGIN { printf "FLOOD itl_p99_quiet_ms=%.2f itl_p99_flooded_ms=%.2f ratio=%.2f\n", q, f, f / q }'
