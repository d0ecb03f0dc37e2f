#!/bin/sh
# gpu_check.sh: the one script for a session that has a GPU (issue 14, point 7).
# Run from the repository root on a machine with one NVIDIA GPU:
#
#   sh t/gpu/gpu_check.sh            # LAYERS=4 STEPS=8 by default
#
#   1. make test-gpu: every CUDA op, the fixtures and the vision tower against
#      the CPU backend, generate cpu == cuda, compute-sanitizer memcheck
#   2. glm-engine bench --synthetic glm-4.5-air --layers $LAYERS, FP8 then
#      BF16: the copy and GEMM rates measured in the same run (RATE lines),
#      decode at batch 1, 8, 32, 64, 128, 256 and 1k/8k prefill (BENCH lines
#      with roofline_frac against those measured rates)
#   3. one decode step at batch 1 and at 64 under nsys (kernel summary:
#      launches, time per kernel), SKIPPED where nsys is not installed
#
# then prints a summary block to paste into the session's note.  It never
# needs more than one GPU; each step has a time limit so the whole run
# stays within about 8 minutes on one H100 (the synthetic checkpoints are
# written once into build/synthetic and reused).  Everything it prints is
# also kept in build/gpu-check/.
set -u
cd "$(dirname "$0")/../.."
LAYERS=${LAYERS:-4}
STEPS=${STEPS:-8}
OUT=build/gpu-check
ENGINE=build/glm-engine
mkdir -p "$OUT"
start=$(date +%s)
status=""

note() { status="$status$1
"; }

if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
    echo "SKIPPED: no GPU (nvidia-smi lists none)"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,clocks.max.sm --format=csv \
    | tee "$OUT/gpu.txt"

echo "=== 1. make test-gpu"
if timeout 240 make --no-print-directory test-gpu >"$OUT/test-gpu.txt" 2>&1; then
    note "test-gpu: $(grep 'test-gpu:' "$OUT/test-gpu.txt" | tail -1)"
else
    note "test-gpu: FAILED or timed out (rc $?): see $OUT/test-gpu.txt"
fi
tail -25 "$OUT/test-gpu.txt"

for dtype in fp8 bf16; do
    echo "=== 2. bench --synthetic glm-4.5-air --layers $LAYERS --dtype $dtype"
    if timeout 180 "$ENGINE" bench --synthetic glm-4.5-air --layers "$LAYERS" --dtype "$dtype" \
           --backend cuda --steps "$STEPS" >"$OUT/bench-$dtype.txt" 2>"$OUT/bench-$dtype.err"; then
        :
    else
        note "bench $dtype: FAILED or timed out (rc $?): see $OUT/bench-$dtype.err"
    fi
    cat "$OUT/bench-$dtype.txt"
    tail -3 "$OUT/bench-$dtype.err"
done

echo "=== 3. one decode step under nsys"
NSYS=$(command -v nsys 2>/dev/null || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
if [ -n "$NSYS" ]; then
    for b in 1 64; do
        rm -f "$OUT/decode-b$b.nsys-rep" "$OUT/decode-b$b.sqlite"
        if timeout 90 "$NSYS" profile --force-overwrite true -o "$OUT/decode-b$b" \
               "$ENGINE" bench --synthetic glm-4.5-air --layers "$LAYERS" --dtype fp8 \
               --backend cuda --batch-sizes "$b" --steps 1 --prefill-lens none \
               >"$OUT/nsys-b$b.log" 2>&1 \
           && timeout 60 "$NSYS" stats --report cuda_gpu_kern_sum --format csv \
               "$OUT/decode-b$b.nsys-rep" >"$OUT/kernels-b$b.csv" 2>/dev/null; then
            # rows: time(%), total time, instances, ..., name; the step is
            # counted twice (warm-up + 1), the load's kernels included
            echo "--- batch $b: top kernels by GPU time"
            head -16 "$OUT/kernels-b$b.csv"
            launches=$(awk -F, 'NR > 1 { gsub(/"/, "", $3); n += $3 } END { print n + 0 }' \
                       "$OUT/kernels-b$b.csv")
            note "nsys decode batch=$b: $launches kernel launches in the run (2 steps + load)"
        else
            note "nsys decode batch=$b: FAILED (see $OUT/nsys-b$b.log)"
        fi
    done
else
    echo "SKIPPED: nsys not installed (CUDA toolkit's Nsight Systems)"
    note "nsys: SKIPPED (not installed)"
fi

echo
echo "==================== gpu_check summary ===================="
head -2 "$OUT/gpu.txt" | tail -1
printf "%s" "$status"
cat "$OUT"/bench-*.txt 2>/dev/null | grep -E '^(RATE|BENCH)'
echo "elapsed: $(( $(date +%s) - start )) s"
echo "============================================================"
