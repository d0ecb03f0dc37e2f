#!/bin/sh
# run_gpu_tests.sh: what `make test-gpu` runs once it has seen a GPU and
# built build/t/gpu/test_ops and build/glm-engine.  Each step prints its own
# OP / FIXTURE lines; this prints one summary line per step and a final
# "test-gpu: N passed, N failed".
#   1. every op against the CPU backend (GLM-4.5-Air and odd shapes)
#   2. the tiny fixtures: logits and 32 greedy tokens, CUDA vs CPU
#   3. GLM-4.5V's vision tower on random pixels, CUDA vs CPU
#   4. glm-engine generate: the same text from --backend cpu and cuda
#   5. compute-sanitizer memcheck over the small ops and one fixture prompt
set -u
cd "$(dirname "$0")/../.."
T=build/t/gpu/test_ops
FIXTURES="t/fixtures/glm45-air-tiny t/fixtures/glm45-tiny t/fixtures/glm45v-tiny"
pass=0
fail=0
failed=""

step() {
    name=$1; shift
    echo "=== $name"
    if "$@"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed="$failed $name"
    fi
}

generate_same() {
    prompt="The quick brown fox"
    cpu_out=$(build/glm-engine generate --backend cpu --model t/fixtures/glm45-air-tiny \
              --prompt "$prompt" --max-tokens 32 2>/dev/null) || return 1
    gpu_out=$(build/glm-engine generate --backend cuda --model t/fixtures/glm45-air-tiny \
              --prompt "$prompt" --max-tokens 32) || return 1
    if [ "$cpu_out" = "$gpu_out" ]; then
        echo "GENERATE glm45-air-tiny identical ok"
        return 0
    fi
    echo "GENERATE glm45-air-tiny differs FAIL"
    echo "  cpu: $cpu_out"
    echo "  gpu: $gpu_out"
    return 1
}

step ops $T ops
step fixtures $T fixtures $FIXTURES
step vision $T vision t/fixtures/glm45v-tiny
step generate generate_same

SAN=$(command -v compute-sanitizer 2>/dev/null || true)
[ -z "$SAN" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && SAN=/usr/local/cuda/bin/compute-sanitizer
if [ -n "$SAN" ]; then
    step memcheck-ops "$SAN" --tool memcheck --error-exitcode 99 $T ops --quick
    step memcheck-fixture "$SAN" --tool memcheck --error-exitcode 99 $T fixtures --quick \
        t/fixtures/glm45-tiny
else
    echo "SKIPPED: memcheck (no compute-sanitizer in PATH or /usr/local/cuda/bin)"
fi

echo
[ -n "$failed" ] && echo "failed steps:$failed"
echo "test-gpu: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
