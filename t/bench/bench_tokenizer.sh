#!/bin/sh
# bench_tokenizer.sh ENGINE_BINARY: single-thread tokenizer encode throughput,
# ours (glm-engine bench-tokenizer) against Hugging Face `tokenizers`
# (bench_tokenizer.py), same corpus, same run.
#
#   TOK_MODEL  directory with tokenizer.json and tok_reference.jsonl
#            (default t/fixtures/tokenizer; build/qwen3-tokenizer after
#            make qwen3-tokenizer)
#   PYTHON   interpreter for the baseline (default python3); if it cannot
#            import tokenizers, `pip install tokenizers` is tried, and if that
#            fails the baseline is reported unavailable (exit 0)
#   BENCH_SECONDS  seconds per side (default 2)
#
# Prints our line, HF's line, and "tokenizer encode ratio ours/hf = <x>"
# (MB/s over MB/s; above 1 means we are faster).
set -u

ENGINE=${1:?usage: bench_tokenizer.sh ENGINE_BINARY}
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${TOK_MODEL:-"$HERE/../fixtures/tokenizer"}
CORPUS="$MODEL/tok_reference.jsonl"
SECS=${BENCH_SECONDS:-2}
PY=${PYTHON:-python3}

ours=$("$ENGINE" bench-tokenizer --model "$MODEL" --corpus "$CORPUS" --seconds "$SECS") || {
    echo "bench_tokenizer: $ENGINE bench-tokenizer failed" >&2
    exit 1
}
echo "$ours"

if ! "$PY" -c 'import tokenizers' >/dev/null 2>&1; then
    echo "bench_tokenizer: $PY cannot import tokenizers; trying pip install tokenizers" >&2
    if ! "$PY" -m pip install --quiet tokenizers >&2 \
        || ! "$PY" -c 'import tokenizers' >/dev/null 2>&1; then
        echo "hf: baseline unavailable (python tokenizers not importable with $PY)"
        exit 0
    fi
fi

hf=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
     "$PY" "$HERE/bench_tokenizer.py" --model "$MODEL" --corpus "$CORPUS" --seconds "$SECS") || {
    echo "bench_tokenizer: bench_tokenizer.py failed" >&2
    exit 1
}
echo "$hf"

# first field after the label is MB/s on both lines
echo "$ours $hf" | awk '{ o = $2; h = 0; for (i = 3; i <= NF; i++) if ($i == "hf:") h = $(i + 1);
    if (h > 0) printf "tokenizer encode ratio ours/hf = %.2f\n", o / h;
    else print "tokenizer encode ratio ours/hf = unavailable" }'
