#!/bin/sh
# bench_preproc.sh ENGINE_BINARY: the GLM-4.5V image path, ours against
# transformers, same images, same run (issue 5's PREPROC benchmark).
#
#   ours: glm-engine bench-preprocess: read the JPEG file, glm_image_decode,
#         glm_preprocess_image (PIL-exact resize, normalise, patchify) with
#         --threads 1 and with $PREPROC_THREADS (default: every CPU);
#   hf:   bench_preproc.py: transformers' load_image (PIL decode,
#         exif_transpose, convert RGB) + Glm4vImageProcessorPil with
#         GLM-4.5V's sizes, one image per call, one thread.
#
# Per size class of t/bench/make_preproc_images.py's generated JPEGs
# (0.25, 1, 4, 12 MP; into build/bench-preproc, not committed) it prints
#   PREPROC class=1MP images=3 threads=1 mode=decode+preprocess ours_ms=.. hf_ms=.. speedup=..
# (milliseconds per image; speedup = hf_ms / ours_ms).  When the engine
# cannot decode JPEG (built without the decoder), both sides are timed on
# already-decoded RGB instead (mode=preprocess-only) and a note says so.
# PREPROC_ONLY=1 forces that mode; both modes with PREPROC_BOTH=1.
#
#   PYTHON        interpreter with transformers, torch and PIL (the Makefile
#                 passes the reference venv when it exists); without them
#                 the baseline is reported unavailable (exit 0)
#   BENCH_SECONDS seconds per side and class (default 2)
set -u

ENGINE=${1:?usage: bench_preproc.sh ENGINE_BINARY}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${PREPROC_DIR:-$ROOT/build/bench-preproc}
SECS=${BENCH_SECONDS:-2}
PY=${PYTHON:-python3}
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
THREADS=${PREPROC_THREADS:-$NCPU}

if ! "$PY" -c 'import numpy, PIL, transformers, torch' >/dev/null 2>&1; then
    echo "bench_preproc: $PY cannot import numpy, PIL, transformers and torch"
    echo "PREPROC baseline unavailable (set PYTHON to the reference venv's python)"
    exit 0
fi

classes=$("$PY" "$HERE/make_preproc_images.py" "$DIR") || {
    echo "bench_preproc: make_preproc_images.py failed" >&2
    exit 1
}

modes="decode+preprocess"
probe=$(echo "$classes" | head -1 | cut -d' ' -f3)
if [ "${PREPROC_ONLY:-0}" = 1 ]; then
    modes="preprocess-only"
elif ! "$ENGINE" preprocess "$probe" >/dev/null 2>&1; then
    echo "note: $ENGINE cannot decode $probe (no image decoder in this build):"
    echo "note: timing preprocessing alone, both sides from the same decoded RGB"
    modes="preprocess-only"
elif [ "${PREPROC_BOTH:-0}" = 1 ]; then
    modes="decode+preprocess preprocess-only"
fi

thread_list=1
[ "$THREADS" -gt 1 ] && thread_list="1 $THREADS"

echo "$classes" | while read -r name size files; do
    for mode in $modes; do
        if [ "$mode" = preprocess-only ]; then
            inputs=$(echo "$files" | sed 's/\.jpg/.ppm/g')
            only=--preprocess-only
        else
            inputs=$files
            only=
        fi
        # shellcheck disable=SC2086
        hf=$("$PY" "$HERE/bench_preproc.py" --seconds "$SECS" $only $files) || {
            echo "bench_preproc: bench_preproc.py failed on $name" >&2
            exit 1
        }
        hf_ms=$(echo "$hf" | sed -n 's/.*ms_per_image=\([^ ]*\).*/\1/p')
        n=$(echo "$hf" | sed -n 's/.*images=\([^ ]*\).*/\1/p')
        for t in $thread_list; do
            # shellcheck disable=SC2086
            ours=$("$ENGINE" bench-preprocess --threads "$t" --seconds "$SECS" $only $inputs) || {
                echo "bench_preproc: $ENGINE bench-preprocess failed on $name" >&2
                exit 1
            }
            ours_ms=$(echo "$ours" | sed -n 's/.*ms_per_image=\([^ ]*\).*/\1/p')
            awk -v c="$name" -v n="$n" -v t="$t" -v m="$mode" -v a="$ours_ms" -v b="$hf_ms" -v s="$size" \
                'BEGIN { printf "PREPROC class=%s size=%s images=%s threads=%s mode=%s ours_ms=%.3f hf_ms=%.3f speedup=%.2f\n", c, s, n, t, m, a, b, b / a }'
        done
    done
done
