#!/bin/sh
# run_tests.sh: everything `make test` runs, after make has built it.  Each
# suite prints its own details; this prints one summary line per suite and a
# final "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
FIXTURES="t/fixtures/glm45-air-tiny t/fixtures/glm45-tiny t/fixtures/glm45v-tiny
    t/fixtures/glm45-air-tiny-fp8-tensor t/fixtures/glm45-air-tiny-fp8-channel
    t/fixtures/glm45-air-tiny-fp8-block t/fixtures/glm45-air-tiny-fp8-block48x40
    t/fixtures/glm45v-tiny-fp8-channel"
PYTHON=${PYTHON:-python3}
# the venv `make test-deps` makes holds the openai SDK for t/http_openai.t
if [ -x build/pyvenv/bin/python ]; then
    GLM_TEST_PYTHON=${GLM_TEST_PYTHON:-$PWD/build/pyvenv/bin/python}
    export GLM_TEST_PYTHON
fi
pass=0
fail=0
failed_suites=""

suite() {
    name=$1; shift
    echo "=== $name"
    if "$@"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed_suites="$failed_suites $name"
    fi
}

for t in build/asan/t/test_*; do
    [ -x "$t" ] || continue
    suite "$(basename "$t")" "$t"
done
suite reference-check build/t/reference_check $FIXTURES
# under ASan: the rank threads, shard copies and gathers checked for memory errors
suite tp-check build/asan/t/tp_check $FIXTURES
# bfloat16 and fp8 KV caches against fp32 on every fixture (make kv-dtype-check)
suite kv-dtype build/t/kv_dtype_check $FIXTURES
# a real 151k tokenizer with an NFC normalizer (make qwen3-tokenizer; SKIPPED
# without it); the build without ASan, which loads 11 MB of JSON in seconds
suite tokenizer-qwen3 build/t/test_tokenizer --corpus-only build/qwen3-tokenizer
suite vision-pix build/t/vision_check pix t/fixtures/vision
suite vision-vl build/t/vision_check vl t/fixtures/glm45v-tiny
suite vision-vl-fp8 build/t/vision_check vl t/fixtures/glm45v-tiny-fp8-channel
suite generate-check "$PYTHON" t/generate_check.py build/glm-engine $FIXTURES
suite loader-errors sh t/loader_errors.sh build/asan/glm-engine
suite plan-check "$PYTHON" t/plan_check.py build/asan/glm-engine
suite synthetic-bench sh t/synthetic_check.sh build/asan/glm-engine
suite http-fake-engine prove t/
suite http-real-engine env \
    GLM_TEST_ENGINE="$PWD/build/asan/glm-engine serve --model $PWD/t/fixtures/glm45-air-tiny --socket %SOCKET%" \
    prove t/
# the engine split over two CPU ranks (--tensor-parallel-size 2): chat,
# tools and vision through nginx, as with one rank
suite http-tp2-engine env \
    GLM_TEST_ENGINE="$PWD/build/asan/glm-engine serve --model $PWD/t/fixtures/glm45-air-tiny --socket %SOCKET% --tensor-parallel-size 2" \
    prove t/http_engine.t t/http_openai.t t/http_tools.t t/http_vision.t
suite engine-check "$PYTHON" t/engine_check.py build/asan/glm-engine build/t/ring_client \
    t/fixtures/glm45-air-tiny

# the CUDA backend run on the CPU (t/gpu/emu): every op and the fixtures
# against the CPU backend, small shapes, under ASan
cuda_emu() {
    # decode graphs replayed against eager steps: a small dense model and
    # a MoE fixture (the MoE op waits for nothing on the host: it replays)
    [ -f build/graph-model/model.safetensors ] \
        || "$PYTHON" t/gpu/make_profile_model.py build/graph-model --dense --layers 2 \
               --hidden 256 --inter 512 --vocab 2048 --heads 8 --kv-heads 2
    build/emu/test_graphs && build/emu/test_ops ops --quick && build/emu/test_ops fixtures --quick $FIXTURES \
        && build/emu/test_ops vision t/fixtures/glm45v-tiny \
        && build/emu/test_ops graphs build/graph-model t/fixtures/glm45-air-tiny
}
suite cuda-emu cuda_emu
# the CUDA backend's tensor-parallel ranks in the emulation: 2 emulated GPUs,
# the shared-memory communicator for NCCL, EP off and on, against the CPU
# oracle; a BF16 fixture, one whose FP8 column shards cut 48x40 scale blocks,
# and the vision tower data parallel (make tp-check-cuda-emu: all, 2 and 4)
suite cuda-emu-tp build/emu/tp_emu_check --quick --ranks 2 t/fixtures/glm45-air-tiny \
    t/fixtures/glm45-air-tiny-fp8-block48x40 t/fixtures/glm45v-tiny

echo
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
