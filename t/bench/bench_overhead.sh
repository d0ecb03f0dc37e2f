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
trap 'kill $NGX $ENG 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
NGX=; ENG=

for c in $CONC; do
    N=${NUM_PROMPTS:-$((c * 4))}
    mkdir -p "$WORK/logs" "$WORK/tmp"
    if [ "$(id -u)" -eq 0 ]; then USER_LINE="user nobody nogroup;"; GROUP="--socket-group nogroup"
    else USER_LINE=""; GROUP=""; fi
    sed -e "s|@PORT@|$PORT|g" -e "s|@SOCK@|$WORK/engine.sock|g" -e "s|@RUN@|$WORK|g" \
        -e "s|@MODULE@|$ROOT/build/nginx/ngx_http_glm_module.so|g" -e "s|@USER@|$USER_LINE|g" \
        -e "s|access_log .*;|access_log off;|" "$ROOT/conf.d/run.conf.in" >"$WORK/nginx.conf"
    "$ROOT/build/glm-engine" serve --model "$MODEL" --socket "$WORK/engine.sock" \
        --served-model-name bench --max-num-seqs "$c" --threads "$THREADS" $GROUP 2>"$WORK/engine.log" &
    ENG=$!
    while [ ! -S "$WORK/engine.sock" ]; do sleep 0.1; done
    /usr/sbin/nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/logs/error.log" &
    NGX=$!
    ok=0; i=0
    while [ $ok -lt 4 ] && [ $i -lt 200 ]; do    # every worker attached
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ]
        then ok=$((ok + 1)); else ok=0; sleep 0.05; fi
        i=$((i + 1))
    done
    served=$("$ROOT/build/glm-bench" --base-url "http://127.0.0.1:$PORT" --model bench \
        --tokenizer "$MODEL" --input-len "$IN" --output-len "$OUT" --num-prompts "$N" \
        --max-concurrency "$c" --progress-interval 0 | tee "$WORK/served.txt" \
        | sed -n 's/.* output_tok_s=\([0-9.]*\).*/\1/p')
    kill $NGX $ENG; wait $NGX $ENG 2>/dev/null || true
    rm -f "$WORK/engine.sock"
    offline=$("$ROOT/build/glm-engine" bench --model "$MODEL" --input-len "$IN" \
        --output-len "$OUT" --num-prompts "$N" --max-num-seqs "$c" --threads "$THREADS" \
        | sed -n 's/.* output_tok_s=\([0-9.]*\).*/\1/p')
    grep -E 'Successful|Failed|Output token throughput|Mean TTFT|Mean ITL' "$WORK/served.txt"
    awk -v c="$c" -v a="$served" -v b="$offline" \
        'BEGIN { printf "OVERHEAD c=%d served_tok_s=%.1f offline_tok_s=%.1f overhead=%.3f\n", c, a, b, 1 - a / b }'
done
