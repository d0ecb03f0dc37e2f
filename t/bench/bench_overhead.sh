#!/bin/sh
# bench_overhead.sh: what nginx + the ring cost.  For each concurrency C it
# serves the model through nginx, drives it with glm-bench (random prompts,
# ignore_eos, the vLLM bench serve metrics), then runs the engine's own
# offline throughput (glm-engine bench) with the same lengths, prompt count
# and batch limit in the same run, and prints
#   OVERHEAD c=<C> served_tok_s=<a> offline_tok_s=<b> overhead=<1-a/b>
# The baseline is measured right after its served run, on the same machine.
#   MODEL (default the tiny fixture), INPUT_LEN, OUTPUT_LEN, NUM_PROMPTS, CONCURRENCY
#   ENGINE_THREADS  CPU backend threads in both runs (default 1): on a small
#           machine the compute threads would otherwise share cores with nginx
#           and the load generator in the served run only, and the ratio would
#           measure core sharing, not the front end (on a GPU host the engine's
#           CPU threads mostly wait for the GPU)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${MODEL:-$ROOT/t/fixtures/glm45-air-tiny}
IN=${INPUT_LEN:-128}
OUT=${OUTPUT_LEN:-128}
CONC=${CONCURRENCY:-64 256}
THREADS=${ENGINE_THREADS:-1}
WORK=$(mktemp -d)
chmod 755 "$WORK"     # nginx workers (nobody) must reach the engine socket
PORT=$((20000 + $$ % 20000))
trap 'kill $NGX $ENG 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
NGX=; ENG=
. "$ROOT/t/bench/serve_lib.sh"

for c in $CONC; do
    N=${NUM_PROMPTS:-$((c * 4))}
    serve_start "$c"
    served=$("$ROOT/build/glm-bench" --base-url "http://127.0.0.1:$PORT" --model bench \
        --tokenizer "$MODEL" --input-len "$IN" --output-len "$OUT" --num-prompts "$N" \
        --max-concurrency "$c" --progress-interval 0 | tee "$WORK/served.txt" \
        | sed -n 's/.* output_tok_s=\([0-9.]*\).*/\1/p')
    serve_stop
    offline=$("$ROOT/build/glm-engine" bench --model "$MODEL" --input-len "$IN" \
        --output-len "$OUT" --num-prompts "$N" --max-num-seqs "$c" --threads "$THREADS" \
        | sed -n 's/.* output_tok_s=\([0-9.]*\).*/\1/p')
    grep -E 'Successful|Failed|Output token throughput|Mean TTFT|Mean ITL' "$WORK/served.txt"
    awk -v c="$c" -v a="$served" -v b="$offline" \
        'BEGIN { printf "OVERHEAD c=%d served_tok_s=%.1f offline_tok_s=%.1f overhead=%.3f\n", c, a, b, 1 - a / b }'
done
