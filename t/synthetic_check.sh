#!/bin/sh
# synthetic_check.sh ENGINE: `glm-engine bench --synthetic` on the CPU, small.
# A checkpoint with a fixture's exact tensors and random weights is written
# for 2 of its 3 layers, read back (the writer checks every header against
# the source), loaded by the real loader and stepped: decode at two batch
# sizes and a prefill in three chunks.  The figures are not judged (timing);
# what is checked is that every line the GPU script (t/gpu/gpu_check.sh)
# reads is there, that config.json says 2 layers, and that a second run
# reuses the checkpoint instead of writing it again.
set -u
ENGINE=${1:-build/glm-engine}
OUT=build/synthetic-test
rm -rf "$OUT"
run() {
    "$ENGINE" bench --synthetic t/fixtures/glm45-air-tiny-fp8-block --layers 2 \
        --batch-sizes 1,3 --context 20 --steps 2 --prefill-lens 40 \
        --max-num-batched-tokens 16 --threads 2 --synthetic-out "$OUT" 2>&1
}
out=$(run) || { echo "$out"; echo "synthetic: bench failed"; exit 1; }
echo "$out" | grep -E '^(synthetic|RATE|BENCH)'
fail=0
for pat in '^synthetic: writing ' '^RATE backend=cpu copy_gbs=[0-9.]* gemm_tflops=' \
           '^BENCH fp8 decode batch=1 tok_s=[0-9.]* roofline_frac=[0-9.]* ' \
           '^BENCH fp8 decode batch=3 tok_s=[0-9.]* roofline_frac=[0-9.]* ' \
           '^BENCH fp8 prefill batch=1 tokens=40 tok_s=[0-9.]* roofline_frac=[0-9.]* '; do
    echo "$out" | grep -q "$pat" || { echo "synthetic: missing a line like: $pat"; fail=1; }
done
grep -q '"num_hidden_layers": *2' "$OUT/config.json" \
    || { echo "synthetic: config.json does not say 2 layers"; fail=1; }
out=$(run) || { echo "$out"; echo "synthetic: second run failed"; exit 1; }
echo "$out" | grep -q '^synthetic: reusing ' \
    || { echo "synthetic: the second run did not reuse the checkpoint"; fail=1; }
[ $fail = 0 ] && echo "synthetic: ok"
exit $fail
