#!/bin/sh
# bench_cpu.sh: the CPU backend's speed on a GLM-4.5-Air-shaped checkpoint
# (t/bench/make_synthetic_checkpoint.py: 2.48 B random BF16 parameters,
# written once under build/), offline (`glm-engine bench`: the scheduler and
# the model, no HTTP), against a baseline engine in the same run, rounds
# alternating, medians; prints
#   CPU <metric> new=<x> base=<y> ratio=<new/base>
# for decode_tok_s_c1 (one stream), decode_tok_s_c8 (8 streams),
# prefill_tok_s_512 (one 512-token prompt) and, per engine, the kernels it
# ran (GLM_CPU_ISA).  A ratio, never asserted.
#   BASE_ENGINE  the baseline glm-engine (default: this build with
#                GLM_CPU_ISA=generic, the portable kernels)
#   BASE_ISA     GLM_CPU_ISA for the baseline (default generic when
#                BASE_ENGINE is unset, else the best the CPU has)
#   MODEL        (default build/synthetic-air, made when absent)
#   THREADS (2), ROUNDS (3), DECODE_LEN (32)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NEW=$ROOT/build/glm-engine
if [ -n "${BASE_ENGINE:-}" ]; then
    BASE=$BASE_ENGINE; BASE_ISA=${BASE_ISA:-avx512}
else
    BASE=$NEW; BASE_ISA=${BASE_ISA:-generic}
fi
MODEL=${MODEL:-$ROOT/build/synthetic-air}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
DLEN=${DECODE_LEN:-32}
PYTHON=${PYTHON:-python3}

if [ "$MODEL" = "$ROOT/build/synthetic-air" ]; then
    "$PYTHON" "$ROOT/t/bench/make_synthetic_checkpoint.py" "$MODEL" >&2
fi
# the weights into the page cache once, so no round pays for the disk
cat "$MODEL"/*.safetensors >/dev/null

# one ENGINE ISA PROMPTS SEQS INPUT OUTPUT: prints seconds and output tok/s
one() {
    GLM_CPU_ISA=$2 "$1" bench --model "$MODEL" --threads "$THREADS" --num-prompts "$3" \
        --max-num-seqs "$4" --input-len "$5" --output-len "$6" --no-enable-prefix-caching |
    sed -n 's/.* seconds=\([0-9.]*\) output_tok_s=\([0-9.]*\).*/\1 \2/p'
}

# metric NAME PROMPTS SEQS INPUT OUTPUT: rounds of base and new alternating
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
metric() {
    _name=$1; shift
    : >"$WORK/new"; : >"$WORK/base"
    _r=0
    while [ $_r -lt "$ROUNDS" ]; do
        one "$BASE" "$BASE_ISA" "$@" >>"$WORK/base"
        one "$NEW" "${NEW_ISA:-avx512}" "$@" >>"$WORK/new"
        _r=$((_r + 1))
    done
    # decode: output tok/s; prefill (one output token): input tokens / s
    for _f in new base; do
        if [ "$4" -eq 1 ]; then
            awk -v n="$3" '{ print n / $1 }' "$WORK/$_f"
        else
            awk '{ print $2 }' "$WORK/$_f"
        fi | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }' >"$WORK/$_f.med"
    done
    awk -v m="$_name" -v a="$(cat "$WORK/new.med")" -v b="$(cat "$WORK/base.med")" \
        'BEGIN { printf "CPU %s new=%.2f base=%.2f ratio=%.2f\n", m, a, b, a / b }'
}

echo "CPU engines new=$NEW (${NEW_ISA:-avx512}) base=$BASE ($BASE_ISA) threads=$THREADS rounds=$ROUNDS"
metric decode_tok_s_c1 1 1 16 "$DLEN"
metric decode_tok_s_c8 8 8 16 "$DLEN"
metric prefill_tok_s_512 1 1 512 1
