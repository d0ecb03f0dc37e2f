#!/bin/sh
# bench_peer.sh: ngx_glm's CPU backend against llama.cpp's llama-server on
# the same checkpoint, both driven by glm-bench, rounds interleaved; prints
#   PEER llama.cpp <source> commit <c>
#   PEER <metric> ours=<x> llamacpp=<y> ratio=<ours/llamacpp>
# (ratio >= 1 is ours ahead; ttft is inverted so that it reads the same way).
# Ratios only, never asserted: the machine is shared.
#
# The checkpoint: t/bench/make_synthetic_checkpoint.py (GLM-4.5-Air-shaped,
# 2.48 B random BF16 parameters) in build/synthetic-air, converted to a BF16
# GGUF with llama.cpp's own convert_hf_to_gguf.py.  Everything of llama.cpp's
# lives in build/peer (never committed) and is reused by the next run:
#   - the source: LLAMA_CPP (a llama.cpp source folder, or a bare git dir,
#     exported), else the sdist of llama-cpp-python 0.3.36 (pip download),
#     whose vendor/llama.cpp is llama.cpp 0c1e57098 with glm4moe;
#   - the build: CPU only, Release, llama-server alone;
#   - the converter's Python (torch, transformers: its requirements) in
#     PEER_VENV (default ~/venv-peer, outside the repository), made once;
#   - the conversion works on a scratch copy of the checkpoint folder (the
#     tokenizer config named for transformers 4) and of the converter, in
#     which a pre-tokenizer hash it does not know maps to `glm4`, the
#     pre-tokenizer it uses for GLM-4.5-Air: our fixture tokenizer is not
#     GLM-4.5-Air's, so its hash is not in llama.cpp's table.
#
# Metrics (glm-bench's random dataset, ignore_eos, temperature 0):
#   decode_tok_s_c1    output tok/s, one stream (INPUT 64, OUTPUT 64)
#   ttft_ms_c1         mean TTFT of that run (ratio llamacpp/ours)
#   output_tok_s_c8    output tok/s, 8 concurrent streams
#   output_tok_s_c32   output tok/s, 32 concurrent streams
#   prefill_tok_s_512  512-token prompts one at a time: 512 / mean TTFT
#   THREADS (2), ROUNDS (2), LLAMA_ARGS (extra llama-server options, default
#   --poll 0: its spinning thread pool collapses on a busy 2-core machine)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEER=$ROOT/build/peer
MODEL=$ROOT/build/synthetic-air
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
PYTHON=${PYTHON:-python3}
PEER_VENV=${PEER_VENV:-$HOME/venv-peer}
LLAMA_ARGS=${LLAMA_ARGS:---poll 0}
SDIST=llama_cpp_python-0.3.36
mkdir -p "$PEER"

say() { echo "bench-peer: $*" >&2; }

# ---- llama.cpp: source, build ----------------------------------------------
if [ -n "${LLAMA_CPP:-}" ]; then
    if [ -f "$LLAMA_CPP/HEAD" ] && [ -d "$LLAMA_CPP/objects" ]; then
        COMMIT=$(git --git-dir="$LLAMA_CPP" rev-parse --short=9 HEAD)
        SRC=$PEER/src-$COMMIT
        if [ ! -d "$SRC" ]; then
            say "exporting $LLAMA_CPP at $COMMIT"
            rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
            git --git-dir="$LLAMA_CPP" archive HEAD | tar -x -C "$SRC.tmp"
            mv "$SRC.tmp" "$SRC"
        fi
    else
        SRC=$(cd "$LLAMA_CPP" && pwd)
        COMMIT=$(git -C "$SRC" rev-parse --short=9 HEAD 2>/dev/null || echo unknown)
    fi
    ORIGIN=$LLAMA_CPP
else
    if [ ! -f "$PEER/$SDIST.tar.gz" ]; then
        say "downloading the llama-cpp-python 0.3.36 sdist"
        "$PYTHON" -m pip download -q --no-binary :all: --no-deps llama-cpp-python==0.3.36 \
            -d "$PEER"
    fi
    if [ ! -d "$PEER/$SDIST/vendor/llama.cpp" ]; then
        tar -xzf "$PEER/$SDIST.tar.gz" -C "$PEER"
    fi
    SRC=$PEER/$SDIST/vendor/llama.cpp
    COMMIT=0c1e57098
    ORIGIN="llama-cpp-python 0.3.36 sdist, vendor/llama.cpp"
fi
BUILD=$PEER/build-$(printf '%s' "$SRC" | cksum | cut -d' ' -f1)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    say "configuring llama.cpp (CPU, Release) in $BUILD"
    # GIT_DIR: the sdist has no .git, and its build info must not read ours
    GIT_DIR=/nonexistent cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_CUDA=OFF -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >"$PEER/cmake.log" 2>&1 ||
        { cat "$PEER/cmake.log" >&2; exit 1; }
fi
say "building llama-server (cached after the first run)"
GIT_DIR=/nonexistent cmake --build "$BUILD" --target llama-server -j "$THREADS" \
    >"$PEER/build.log" 2>&1 || { tail -30 "$PEER/build.log" >&2; exit 1; }
LLAMA_SERVER=$BUILD/bin/llama-server

# ---- the checkpoint and its GGUF -------------------------------------------
"$PYTHON" "$ROOT/t/bench/make_synthetic_checkpoint.py" "$MODEL" >&2
GGUF=$PEER/synthetic-air-bf16.gguf
if [ ! -f "$GGUF" ] || [ "$MODEL/model.safetensors" -nt "$GGUF" ]; then
    if [ ! -x "$PEER_VENV/bin/python" ]; then
        say "making $PEER_VENV with llama.cpp's converter requirements"
        "$PYTHON" -m venv "$PEER_VENV"
        "$PEER_VENV/bin/pip" install -q torch "numpy~=2.2.6" "sentencepiece>=0.1.98,<0.3.0" \
            transformers==4.57.6 "protobuf>=4.21.0,<5.0.0"
    fi
    HF=$PEER/hf
    CONV=$PEER/convert
    rm -rf "$HF" "$CONV"
    mkdir -p "$HF" "$CONV"
    for f in model.safetensors config.json tokenizer.json chat_template.jinja \
             generation_config.json; do
        ln -s "$MODEL/$f" "$HF/$f"
    done
    # transformers 4 (the converter's pin) knows the fast tokenizer by this name
    sed 's/"TokenizersBackend"/"PreTrainedTokenizerFast"/' "$MODEL/tokenizer_config.json" \
        >"$HF/tokenizer_config.json"
    cp -r "$SRC/convert_hf_to_gguf.py" "$SRC/conversion" "$SRC/gguf-py" "$CONV/"
    "$PYTHON" - "$CONV/conversion/base.py" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
anchor = "        if res is None:\n            logger.warning(\"\\n\")"
assert anchor in s, "get_vocab_base_pre() changed: update bench_peer.sh"
s = s.replace(anchor, "        if res is None and os.environ.get('GLM_PEER_PRE_TOKENIZER'):\n"
              "            res = os.environ['GLM_PEER_PRE_TOKENIZER']\n" + anchor, 1)
open(p, "w").write(s)
EOF
    say "converting the checkpoint to BF16 GGUF"
    GLM_PEER_PRE_TOKENIZER=glm4 "$PEER_VENV/bin/python" "$CONV/convert_hf_to_gguf.py" "$HF" \
        --outtype bf16 --outfile "$GGUF.tmp" >"$PEER/convert.log" 2>&1 ||
        { tail -30 "$PEER/convert.log" >&2; exit 1; }
    mv "$GGUF.tmp" "$GGUF"
fi

# ---- both servers, interleaved rounds ---------------------------------------
WORK=$(mktemp -d)
chmod 755 "$WORK"     # nginx workers (nobody) must reach the engine socket
PORT=$((20000 + $$ % 20000))
LPORT=$((PORT + 1))
NGX=; ENG=; LLAMA=
trap 'kill $NGX $ENG $LLAMA 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
. "$ROOT/t/bench/serve_lib.sh"
SEQS=32
CTX=512               # per stream, doubled: 512 + 1 and a chat template, and
                      # llama.cpp's tokenizer may make more of a prompt than ours
# the weights into the page cache once, so no round pays for the disk
cat "$MODEL/model.safetensors" "$GGUF" >/dev/null

serve_start "$SEQS" --kv-blocks $((SEQS * 2 * CTX / 16))
# shellcheck disable=SC2086
"$LLAMA_SERVER" -m "$GGUF" --host 127.0.0.1 --port "$LPORT" -t "$THREADS" -tb "$THREADS" \
    -np "$SEQS" -c $((SEQS * 2 * CTX)) --jinja --no-webui $LLAMA_ARGS \
    >"$WORK/llama.log" 2>&1 &
LLAMA=$!
i=0
until curl -sf "http://127.0.0.1:$LPORT/health" >/dev/null; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$LLAMA" 2>/dev/null; then
        tail -20 "$WORK/llama.log" >&2
        exit 1
    fi
    sleep 0.5
done

# bench WHO CONC PROMPTS INPUT OUTPUT: the RESULT line's fields
bench() {
    if [ "$1" = ours ]; then _port=$PORT; else _port=$LPORT; fi
    # a failed request is reported (the RESULT line counts it) and the run
    # goes on: one bad answer should not cost the whole comparison
    "$ROOT/build/glm-bench" --base-url "http://127.0.0.1:$_port" --tokenizer "$MODEL" \
        --max-concurrency "$2" --num-prompts "$3" --input-len "$4" --output-len "$5" \
        --progress-interval 0 --seed "$r" --ready-check-timeout-sec 600 >"$WORK/out.txt" 2>&1 ||
        { say "$1 c=$2 in=$4 out=$5:"; grep -i -m 3 'error\|fail' "$WORK/out.txt" >&2 || true; }
    grep '^RESULT ' "$WORK/out.txt" || { tail -5 "$WORK/out.txt" >&2; exit 1; }
}

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

r=0
while [ $r -lt "$ROUNDS" ]; do
    for who in ours llamacpp; do
        bench $who 1 4 64 64 >"$WORK/c1.$who.$r"
        bench $who 8 16 64 64 >"$WORK/c8.$who.$r"
        bench $who 32 32 64 64 >"$WORK/c32.$who.$r"
        bench $who 1 3 512 1 >"$WORK/pf.$who.$r"
        say "round $r $who: $(field output_tok_s <"$WORK/c1.$who.$r") tok/s c1," \
            "$(field output_tok_s <"$WORK/c32.$who.$r") tok/s c32"
    done
    r=$((r + 1))
done

# median over rounds of metric FILE FIELD [scale]: scale/value when given
median() {
    for f in "$WORK/$1".*; do field "$2" <"$f"; done | sort -g |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
line() {
    _o=$(median "$2.ours" "$3"); _l=$(median "$2.llamacpp" "$3")
    awk -v m="$1" -v o="$_o" -v l="$_l" -v inv="${4:-0}" -v sc="${5:-0}" 'BEGIN {
        if (sc > 0) { o = sc / (o / 1000); l = sc / (l / 1000) }
        printf "PEER %s ours=%.2f llamacpp=%.2f ratio=%.2f\n", m, o, l, inv ? l / o : o / l }'
}
echo "PEER llama.cpp $ORIGIN commit $COMMIT threads=$THREADS rounds=$ROUNDS args=$LLAMA_ARGS"
line decode_tok_s_c1 c1 output_tok_s
line ttft_ms_c1 c1 mean_ttft_ms 1
line output_tok_s_c8 c8 output_tok_s
line output_tok_s_c32 c32 output_tok_s
line prefill_tok_s_512 pf mean_ttft_ms 0 512
