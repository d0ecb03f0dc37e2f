#!/usr/bin/env python3
"""
make_preproc_images.py OUT_DIR: the inputs of t/bench/bench_preproc.sh
(`make bench-preproc`), generated, never committed.

Per size class (0.25, 1, 4 and 12 megapixels, 4:3), IMAGES_PER_CLASS
photo-like JPEGs (smooth gradients, soft shapes, texture and noise, so that
the JPEG is of typical size; quality 90, 4:2:0 as PIL saves by default),
the last of each class rotated by an EXIF orientation tag (6) so that the
exif_transpose of transformers' load_image has work to do.  Next to each
JPEG, the image as load_image decodes it (exif_transpose + convert("RGB"))
as a binary PPM, the input of the preprocessing-only measurement.

Writes OUT_DIR/<class>-<i>.jpg and .ppm and prints one line per class:
"<class> <w>x<h> <files...>".
"""
import os
import sys

import numpy as np
from PIL import Image, ImageOps

CLASSES = [("0.25MP", 576, 432), ("1MP", 1152, 864), ("4MP", 2304, 1728),
           ("12MP", 4000, 3000)]
IMAGES_PER_CLASS = 3


def photo(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 60 * a * x / w + 60 * b * y / h + 20 * d
    for _ in range(12):                       # soft blobs
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.03, 0.25) * min(w, h)
        col = rng.uniform(-90, 90, 3)
        m = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
        img += m[..., None] * col
    fx, fy = rng.uniform(0.02, 0.2, 2)        # texture
    img += 12 * (np.sin(x * fx) * np.cos(y * fy))[..., None]
    img += rng.normal(0, 6, img.shape)        # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench-preproc"
    os.makedirs(out, exist_ok=True)
    for name, w, h in CLASSES:
        files = []
        for i in range(IMAGES_PER_CLASS):
            jpg = os.path.join(out, "%s-%d.jpg" % (name, i))
            ppm = os.path.join(out, "%s-%d.ppm" % (name, i))
            if not (os.path.exists(jpg) and os.path.exists(ppm)):
                im = Image.fromarray(photo(w, h, 1000 * i + w))
                exif = Image.Exif()
                if i == IMAGES_PER_CLASS - 1:
                    exif[0x0112] = 6          # rotate 90 degrees on display
                im.save(jpg, quality=90, exif=exif.tobytes())
                dec = ImageOps.exif_transpose(Image.open(jpg)).convert("RGB")
                dec.save(ppm)
            files.append(jpg)
        print(name, "%dx%d" % (w, h), " ".join(files))


if __name__ == "__main__":
    main()
