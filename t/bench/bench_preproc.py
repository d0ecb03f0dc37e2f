#!/usr/bin/env python3
"""
bench_preproc.py: the transformers baseline for t/bench/bench_preproc.sh.
Same work as `glm-engine bench-preprocess`: for each JPEG, transformers'
load_image(path) (PIL open + decode, exif_transpose, convert("RGB")) and
the PIL-backend Glm4vImageProcessor with GLM-4.5V's sizes (shortest_edge
12544, longest_edge 9633792) to pixel_values, one image per call as a
server does, return_tensors="pt" as vLLM asks for; a warm-up pass, then
whole passes for about --seconds.  --preprocess-only: decode once up front
and time the processor alone.

Prints one line:  hf: images=N ms_per_image=X passes=P mode=M
"""
import argparse
import os
import sys
import time

# one thread for torch's own ops: the processor is single-threaded numpy/PIL
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--preprocess-only", action="store_true")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    from transformers.image_utils import load_image
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    proc = Glm4vImageProcessorPil(size={"shortest_edge": 12544, "longest_edge": 9633792})

    def one(item):
        img = item if args.preprocess_only else load_image(item)
        out = proc(images=[img], return_tensors="pt")
        return out["pixel_values"].shape[0]

    items = [load_image(f) for f in args.files] if args.preprocess_only else list(args.files)
    for it in items:                    # warm-up
        one(it)
    images = passes = 0
    t0 = time.perf_counter()
    while True:
        for it in items:
            one(it)
            images += 1
        passes += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= args.seconds:
            break
    print("hf: images=%d ms_per_image=%.3f passes=%d mode=%s"
          % (len(items), elapsed * 1e3 / images, passes,
             "preprocess-only" if args.preprocess_only else "decode+preprocess"))


if __name__ == "__main__":
    sys.exit(main())
