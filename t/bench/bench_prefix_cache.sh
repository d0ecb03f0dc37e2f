#!/bin/sh
# bench_prefix_cache.sh: what automatic prefix caching saves.  NUM_PROMPTS
# requests sharing a PREFIX_LEN-token system prompt (glm-bench's random
# dataset with --random-prefix-len, as `vllm bench serve --random-prefix-len`)
# are sent all at once to the model served through nginx, first with
# --no-enable-prefix-caching, then with the cache on (the default), in the
# same run on the same machine; prints
#   PREFIX_CACHE ttft_ratio=<off/on> ttft_off_ms=<a> ttft_on_ms=<b>
#       hit_rate=<hits/queries of the cached run> prompts=<n> prefix_len=<p>
# (mean TTFT; hit_rate from vllm:prefix_cache_hits / _queries).  A ratio,
# never asserted.  glm-bench's warm-up request is skipped, so the cached
# run computes the shared prompt once, inside the measurement.
#   MODEL (default the tiny fixture: max_position_embeddings 4096),
#   PREFIX_LEN (2048), INPUT_LEN (64: each prompt's own ids), OUTPUT_LEN
#   (16), NUM_PROMPTS (32), ENGINE_THREADS (1, as bench_overhead.sh)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${MODEL:-$ROOT/t/fixtures/glm45-air-tiny}
PREFIX=${PREFIX_LEN:-2048}
IN=${INPUT_LEN:-64}
OUT=${OUTPUT_LEN:-16}
N=${NUM_PROMPTS:-32}
THREADS=${ENGINE_THREADS:-1}
WORK=$(mktemp -d)
chmod 755 "$WORK"     # nginx workers (nobody) must reach the engine socket
PORT=$((20000 + $$ % 20000))
NGX=; ENG=
trap 'kill $NGX $ENG 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
. "$ROOT/t/bench/serve_lib.sh"

# room for every request's whole context in both runs, so that the uncached
# one is not also slowed by preemption (the chat template adds a few ids)
BLOCKS=$((N * ((PREFIX + IN + OUT + 64 + 15) / 16)))

# run LABEL [engine options]: prints the mean TTFT in ms; the /metrics
# prefix counters go to $WORK/LABEL.metrics
run() {
    _label=$1; shift
    serve_start "$N" --kv-blocks "$BLOCKS" "$@"
    "$ROOT/build/glm-bench" --base-url "http://127.0.0.1:$PORT" --model bench \
        --tokenizer "$MODEL" --random-prefix-len "$PREFIX" --input-len "$IN" \
        --output-len "$OUT" --num-prompts "$N" --max-concurrency "$N" \
        --progress-interval 0 --ready-check-timeout-sec 0 >"$WORK/$_label.txt"
    curl -s "http://127.0.0.1:$PORT/metrics" | grep '^vllm:prefix_cache' >"$WORK/$_label.metrics"
    serve_stop
    grep -E '^(Successful|Failed|Mean TTFT)' "$WORK/$_label.txt" | sed "s/^/$_label: /" >&2
    sed -n 's/.* mean_ttft_ms=\([0-9.]*\).*/\1/p' "$WORK/$_label.txt"
}

off=$(run off --no-enable-prefix-caching)
on=$(run on)
hits=$(sed -n 's/^vllm:prefix_cache_hits_total{[^}]*} //p' "$WORK/on.metrics")
queries=$(sed -n 's/^vllm:prefix_cache_queries_total{[^}]*} //p' "$WORK/on.metrics")
awk -v a="$off" -v b="$on" -v h="$hits" -v q="$queries" -v n="$N" -v p="$PREFIX" \
    'BEGIN { printf "PREFIX_CACHE ttft_ratio=%.2f ttft_off_ms=%.1f ttft_on_ms=%.1f" \
             " hit_rate=%.3f prompts=%d prefix_len=%d\n", a / b, a, b, q ? h / q : 0, n, p }'
