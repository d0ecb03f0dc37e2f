#!/usr/bin/env python3
"""
make_preproc_fixtures.py: what t/unit/test_vision_preprocess.c compares the
GLM-4V preprocessing (engine/media/vision_preprocess.c, engine/media/resize_bicubic.c)
against, from the reference implementations:

  smart_resize   transformers 5.23 glm4v image_processing_pil_glm4v.smart_resize
                 on thousands of (frames, h, w, min_pixels, max_pixels) tuples
                 drawn by the generator below, plus hand-picked edge cases
                 (with the error message when it raises);
  resize         Pillow 13 Image.resize((w, h), Image.BICUBIC) on 8-bit RGB
                 ("pil") and torchvision.transforms.v2.functional.resize(...,
                 BICUBIC, antialias=True) on a uint8 [1, 3, H, W] tensor
                 ("torch", what the video processor runs): md5 of the output
                 bytes, for images of many sizes and scale factors;
  image          Glm4vImageProcessorPil (GLM-4.5V sizes unless noted) on small
                 images: grid, md5 of pixel_values as float32 little-endian,
                 and about 40 values spread over it (float32 shortest repr), to
                 report the error size on a mismatch;
  video          Glm4vVideoProcessor with do_sample_frames=False on small
                 frame stacks: the same, plus the frame-pair timestamps that
                 Glm4vProcessor prints into the prompt;
  end_to_end     transformers' load_image (PIL decode, exif_transpose, RGB) +
                 Glm4vImageProcessorPil on some of the decoder's fixture files
                 (t/fixtures/media): md5 of pixel_values, for the whole path
                 glm_image_decode + glm_preprocess_image;
  sample_fps     Glm4vVideoProcessor.sample_frames on many (total_frames, fps,
                 duration, target fps, max_duration);
  sample_uniform vLLM's fixed num_frames sampling (OpenCVVideoBackend.load_bytes
                 in vllm/multimodal/video.py, restated below), which is not
                 installed here.

Inputs are generated, not stored: pixel byte i of an image with seed s is
    h = (i * 0x9E3779B1 + s * 0x85EBCA77 + 0x165667B1) mod 2^32
    h ^= h >> 15; h *= 0x2C1B3C6D; h ^= h >> 12; h *= 0x297A2D39; h ^= h >> 15
    (all mod 2^32), noise: h >> 24
    smooth: ((x * (3 * c + 5) + y * (2 * c + 7)) / 4 + (h >> 27)) mod 256
with x, y, c the pixel's column, row and channel; the C test computes the
same bytes.  smart_resize tuples come from the same hash (see
smart_resize_case below; the C test mirrors it).

Index lists are stored as [count, fnv1a32 of the int32 little-endian values,
first, last].

Writes t/fixtures/preproc/preproc_reference.json.
Run: /root/venv-ref/bin/python t/reference/make_preproc_fixtures.py
(transformers 5.23.0, torch 2.15.0, torchvision 0.29.2, pillow 13.0.0,
numpy 2.4; see t/reference/requirements.txt).
"""
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "preproc", "preproc_reference.json")

GLM45V_IMAGE_SIZE = {"shortest_edge": 12544, "longest_edge": 9633792}
GLM45V_VIDEO_SIZE = {"shortest_edge": 12544, "longest_edge": 47040000}
M32 = 0xFFFFFFFF


def hash32(i, seed):
    """The counter hash, vectorised over numpy uint64 index arrays."""
    h = (i * 0x9E3779B1 + seed * 0x85EBCA77 + 0x165667B1) & M32
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & M32
    h ^= h >> 12
    h = (h * 0x297A2D39) & M32
    h ^= h >> 15
    return h


def make_image(w, h, kind, seed):
    i = np.arange(w * h * 3, dtype=np.uint64)
    hv = hash32(i, np.uint64(seed))
    if kind == 0:
        v = hv >> np.uint64(24)
    else:
        c = i % np.uint64(3)
        x = (i // np.uint64(3)) % np.uint64(w)
        y = i // np.uint64(3 * w)
        v = ((x * (np.uint64(3) * c + np.uint64(5)) + y * (np.uint64(2) * c + np.uint64(7)))
             // np.uint64(4) + (hv >> np.uint64(27))) % np.uint64(256)
    return v.astype(np.uint8).reshape(h, w, 3)


def fnv1a32_ints(values):
    h = 0x811C9DC5
    for v in values:
        for b in int(v).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x01000193) & M32
    return h


def index_summary(values):
    values = [int(v) for v in values]
    return [len(values), fnv1a32_ints(values), values[0] if values else -1,
            values[-1] if values else -1]


# ---- smart_resize -------------------------------------------------------------

PIXEL_BOUNDS = [
    (12544, 9633792),       # GLM-4.5V images
    (12544, 47040000),      # GLM-4.5V videos
    (112 * 112, 28 * 28 * 15000),  # the class default
    (3136, 12845056),
    (56 * 56, 28 * 28 * 1280),
]


def smart_resize_case(k, seed):
    """Case k: (frames, h, w, min_pixels, max_pixels), all from hash32."""
    r = [int(hash32(np.uint64(8 * k + j), np.uint64(seed))) for j in range(8)]
    sel = r[0] % 10
    frames = 2 if sel < 5 else 1 + r[1] % (3 if sel < 6 else 1200)
    sides = [27, 60, 600, 6000, 40000]
    h = 1 + r[2] % sides[r[3] % 5]
    w = 1 + r[4] % sides[r[5] % 5]
    if r[6] % 7 < 5:
        lo, hi = PIXEL_BOUNDS[r[6] % 5]
    else:
        lo = 1 + r[7] % 200000
        hi = lo + r[6] % 60000000
    return frames, h, w, lo, hi


def smart_resize_ref(frames, h, w, lo, hi):
    from transformers.models.glm4v.image_processing_pil_glm4v import smart_resize
    try:
        return list(smart_resize(num_frames=frames, height=h, width=w, temporal_factor=2,
                                 factor=28, min_pixels=lo, max_pixels=hi)), None
    except ValueError as e:
        return None, str(e)


def make_smart_resize(n=3000, seed=7):
    out = []
    for k in range(n):
        hw, msg = smart_resize_ref(*smart_resize_case(k, seed))
        if hw is None:
            out.append([-1, 1 if msg.startswith("t:") else 2])
        else:
            out.append(hw)
    edges = []
    for frames, h, w, lo, hi in [
            (2, 1080, 1920, 12544, 9633792), (2, 224, 224, 12544, 9633792),
            (2, 3000, 4000, 12544, 9633792), (2, 50, 50, 12544, 9633792),
            (2, 20, 300, 12544, 9633792), (16, 720, 1280, 12544, 47040000),
            (600, 720, 1280, 12544, 47040000), (2, 1, 1, 12544, 9633792),
            (2, 1, 200, 12544, 9633792), (2, 1, 201, 12544, 9633792),
            (2, 28, 5600, 12544, 9633792), (2, 28, 5601, 12544, 9633792),
            (2, 5601, 28, 12544, 9633792), (2, 3, 700, 12544, 9633792),
            (2, 7, 1500, 12544, 9633792), (2, 27, 27, 12544, 9633792),
            (2, 42, 42, 0, 9633792), (2, 70, 70, 0, 9633792), (2, 14, 14, 0, 10**12),
            (1, 100, 100, 12544, 9633792), (3, 100, 100, 12544, 9633792),
            (2, 100000, 10, 12544, 9633792), (2, 33, 9999, 12544, 9633792),
            (1200, 4000, 3000, 12544, 47040000), (2, 16384, 16384, 12544, 9633792)]:
        hw, msg = smart_resize_ref(frames, h, w, lo, hi)
        edges.append({"in": [frames, h, w, lo, hi], "out": hw, "error": msg})
    return {"seed": seed, "count": n, "expected": out, "edges": edges}


# ---- resize --------------------------------------------------------------------

def pil_resize(img, dw, dh):
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((dw, dh), Image.BICUBIC))


def torch_resize(img, dw, dh):
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].contiguous()
    r = F.resize(t, [dh, dw], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return r[0].permute(1, 2, 0).contiguous().numpy()


def resize_cases():
    cases = [
        # (sw, sh, dw, dh): identity, one axis, both, up, down, mixed
        (64, 48, 64, 48), (64, 48, 80, 48), (64, 48, 64, 60), (64, 48, 50, 48),
        (64, 48, 64, 40), (64, 48, 70, 40), (64, 48, 50, 60), (64, 48, 128, 96),
        (64, 48, 32, 24), (64, 48, 17, 13), (640, 480, 644, 476), (480, 640, 476, 644),
        (1000, 1000, 1008, 1008), (1920, 1080, 1932, 1092), (4000, 3000, 2520, 1876),
        (300, 20, 420, 28), (50, 50, 84, 84), (720, 1280, 364, 196), (1280, 720, 364, 196),
        (1, 1, 1, 1), (1, 1, 5, 7), (1, 1, 28, 28), (3, 1, 1, 1), (1, 300, 1, 1),
        (300, 1, 28, 28), (1, 500, 28, 5600), (500, 1, 5600, 28), (2, 2, 1, 1),
        (7, 5, 1, 3), (1000, 800, 28, 28), (2000, 10, 28, 28), (10, 2000, 28, 28),
        (5, 5, 1000, 3), (333, 517, 196, 112), (517, 333, 112, 196), (29, 31, 28, 28),
        (28, 28, 29, 31), (101, 103, 100, 104), (100, 104, 101, 103), (9, 9, 8, 10),
        # Pillow's pass order: vertical first iff sh - dh > 2 (sw - dw)
        (100, 100, 90, 80), (100, 100, 90, 79), (100, 100, 90, 81), (100, 100, 100, 79),
        (100, 100, 120, 99), (100, 100, 99, 98), (100, 100, 99, 97),
    ]
    # random sizes, log-uniform scale factors in both directions
    for k in range(90):
        r = [int(hash32(np.uint64(4 * k + j), np.uint64(99))) for j in range(4)]
        sw = 1 + r[0] % 400
        sh = 1 + r[1] % 400
        fx = 2.0 ** ((r[2] % 1000) / 1000.0 * 6 - 3)
        fy = 2.0 ** ((r[3] % 1000) / 1000.0 * 6 - 3)
        cases.append((sw, sh, max(1, int(sw * fx)), max(1, int(sh * fy))))
    return cases


def make_resize():
    out = []
    for n, (sw, sh, dw, dh) in enumerate(resize_cases()):
        for kind in (0, 1):
            seed = 1000 + n * 2 + kind
            img = make_image(sw, sh, kind, seed)
            a = pil_resize(img, dw, dh)
            assert a.shape == (dh, dw, 3)
            case = {"src": [sw, sh], "dst": [dw, dh], "kind": kind, "seed": seed,
                    "pil_md5": hashlib.md5(a.tobytes()).hexdigest(), "torch_md5": None}
            try:
                b = torch_resize(img, dw, dh)
            except RuntimeError:
                # torch 2.15's uint8 kernel trips an internal assert on some
                # 1-pixel-wide outputs; the processors never ask for those
                out.append(case)
                continue
            assert b.shape == (dh, dw, 3)
            diff = np.abs(a.astype(int) - b.astype(int))
            case.update({"torch_md5": hashlib.md5(b.tobytes()).hexdigest(),
                         "pil_torch_differ": int((diff > 0).sum()),
                         "pil_torch_maxdiff": int(diff.max())})
            out.append(case)
    return out


def torch_avx2_agrees(cases):
    """torch picks its uint8 kernel by CPU capability (an AVX2 one, a generic
    one elsewhere): rerun the torch side under ATEN_CPU_CAPABILITY=avx2 and
    check the bytes are the same, since the C side claims exact integers."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    cases0 = cases
    code = ("import json,sys,hashlib;sys.path.insert(0,%r);import make_preproc_fixtures as m\n"
            "def one(c):\n"
            "    try:\n"
            "        return hashlib.md5(m.torch_resize(m.make_image(c['src'][0], c['src'][1],"
            " c['kind'], c['seed']), c['dst'][0], c['dst'][1]).tobytes()).hexdigest()\n"
            "    except RuntimeError as e:\n"
            "        return 'error'\n"
            "print(json.dumps([one(c) for c in json.load(sys.stdin)]))" % HERE)
    r = subprocess.run([sys.executable, "-c", code], input=json.dumps(cases), env=env,
                       capture_output=True, text=True, check=True)
    other = json.loads(r.stdout)
    for o, c in zip(other, cases):
        if o == "error":
            print("torch's AVX2 kernel fails on %s -> %s" % (c["src"], c["dst"]))
    cases = [c for o, c in zip(other, cases) if o != "error" and c["torch_md5"]]
    other = [o for o, c in zip(other, cases0) if o != "error" and c["torch_md5"]]
    return sum(o == c["torch_md5"] for o, c in zip(other, cases)), len(cases)


# ---- processors ------------------------------------------------------------------

def pixel_summary(pv):
    pv = np.ascontiguousarray(np.asarray(pv, dtype=np.float32))
    flat = pv.reshape(-1)
    stride = max(1, len(flat) // 40) | 1
    return {"md5": hashlib.md5(flat.astype("<f4").tobytes()).hexdigest(),
            "sample_stride": stride,
            "samples": [float(str(np.float32(v))) for v in flat[::stride]]}


def make_image_cases():
    from PIL import Image
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
    out = []
    specs = [
        (20, 300, 0, GLM45V_IMAGE_SIZE), (50, 50, 1, GLM45V_IMAGE_SIZE),
        (112, 112, 0, GLM45V_IMAGE_SIZE), (200, 150, 1, GLM45V_IMAGE_SIZE),
        (37, 91, 0, GLM45V_IMAGE_SIZE), (1, 1, 1, GLM45V_IMAGE_SIZE),
        (3, 1, 0, GLM45V_IMAGE_SIZE),
        (300, 200, 1, {"shortest_edge": 784 * 2, "longest_edge": 784 * 2 * 6}),
        (256, 64, 0, {"shortest_edge": 784 * 2, "longest_edge": 784 * 2 * 6}),
        # outputs over 8 MiB (streamed stores) and over 32 MiB (huge pages)
        (700, 700, 1, GLM45V_IMAGE_SIZE), (1400, 1100, 0, GLM45V_IMAGE_SIZE),
    ]
    for n, (w, h, kind, size) in enumerate(specs):
        seed = 500 + n
        img = make_image(w, h, kind, seed)
        proc = Glm4vImageProcessorPil(size=size)
        # a PIL image, as load_image gives: a numpy array of 1x1 or 3x1
        # pixels would be read channels-first
        r = proc(images=[Image.fromarray(img)], return_tensors=None)
        out.append({"src": [w, h], "kind": kind, "seed": seed, "size": size,
                    "grid": [int(v) for v in r["image_grid_thw"][0]],
                    "shape": list(np.asarray(r["pixel_values"]).shape),
                    **pixel_summary(r["pixel_values"])})
    return out


def make_video_cases():
    from transformers import AutoTokenizer
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
    from transformers.models.glm4v.processing_glm4v import Glm4vProcessor
    from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor
    from transformers.video_utils import VideoMetadata
    tok = AutoTokenizer.from_pretrained(os.path.join(HERE, "..", "fixtures", "glm45v-tiny"))
    out = []
    specs = [  # frames, w, h, kind, fps, frame indices
        (2, 60, 40, 0, 30.0, [0, 15]),
        (3, 60, 40, 1, 29.97, [0, 31, 77]),
        (5, 90, 50, 0, 29.97, [0, 31, 77, 140, 199]),
        (4, 200, 120, 1, 24.0, [0, 12, 24, 36]),
        (6, 33, 47, 0, 2.5, [0, 1, 2, 3, 4, 5]),
        (7, 500, 400, 1, 30.0, [0, 15, 30, 45, 60, 75, 90]),
    ]
    for n, (t, w, h, kind, fps, idx) in enumerate(specs):
        frames = np.stack([make_image(w, h, kind, 700 + 10 * n + f) for f in range(t)])
        vp = Glm4vVideoProcessor(size=GLM45V_VIDEO_SIZE)
        r = vp(videos=[frames], do_sample_frames=False, return_tensors="pt")
        proc = Glm4vProcessor(image_processor=Glm4vImageProcessorPil(), tokenizer=tok,
                              video_processor=vp)
        md = VideoMetadata(total_num_frames=idx[-1] + 1, fps=fps,
                           duration=(idx[-1] + 1) / fps, frames_indices=idx)
        enc = proc(text="<|begin_of_video|><|video|><|end_of_video|>", videos=[frames],
                   videos_kwargs={"video_metadata": [md], "do_sample_frames": False},
                   return_tensors=None)
        text = tok.decode(enc["input_ids"][0]).replace("<|image|>", "")
        stamps = [int(s.split("<|begin_of_image|>")[0].split("<|end_of_video|>")[0])
                  for s in text.split("<|end_of_image|>")[1:]]
        out.append({"frames": t, "src": [w, h], "kind": kind,
                    "seeds": [700 + 10 * n + f for f in range(t)],
                    "fps": fps, "frame_index": idx, "size": GLM45V_VIDEO_SIZE,
                    "grid": [int(v) for v in r["video_grid_thw"][0]],
                    "shape": list(r["pixel_values_videos"].shape),
                    "pair_seconds": stamps,
                    **pixel_summary(r["pixel_values_videos"].numpy())})
    return out


END_TO_END_FILES = ["jpeg_420.jpg", "jpeg_444.jpg", "jpeg_exif_o6.jpg", "jpeg_progressive.jpg",
                    "jpeg_grey.jpg", "jpeg_cmyk.jpg", "png_la16.png", "png_pal8_trns.png",
                    "png_exif_o6.png", "bmp_24.bmp", "gif_transparent.gif", "webp_lossy.webp",
                    "gif_offset_trans.gif", "png_grey16_trns.png", "gif_global.gif"]


def make_end_to_end():
    from transformers.image_utils import load_image
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
    proc = Glm4vImageProcessorPil(size=GLM45V_IMAGE_SIZE)
    media = os.path.join(HERE, "..", "fixtures", "media")
    out = []
    for name in END_TO_END_FILES:
        img = load_image(os.path.join(media, name))
        # the colour PIL keeps in info["transparency"] after convert("RGB"):
        # the processor's convert_to_rgb turns its pixels white
        key = img.info.get("transparency")
        r = proc(images=[img], return_tensors=None)
        pv = np.ascontiguousarray(np.asarray(r["pixel_values"], dtype=np.float32))
        out.append({"file": name, "size": list(img.size),
                    "key": list(key) if isinstance(key, tuple) else None,
                    "grid": [int(v) for v in r["image_grid_thw"][0]],
                    "md5": hashlib.md5(pv.astype("<f4").tobytes()).hexdigest()})
    return out


# ---- samplers ------------------------------------------------------------------

def make_sample_fps(n=600, seed=11):
    from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor
    from transformers.video_utils import VideoMetadata
    fps_table = [24000 / 1001, 25.0, 30000 / 1001, 30.0, 60000 / 1001, 60.0, 0.5, 1.0,
                 7.3, 120.0, 240.0, 12.5, 2.0]
    target_table = [2.0, 2.0, 2.0, 1.0, 3.0, 0.5, 10.0]
    maxdur_table = [300.0, 300.0, 300.0, 60.0, 10.0]
    vp = Glm4vVideoProcessor()
    out = []
    for k in range(n):
        r = [int(hash32(np.uint64(6 * k + j), np.uint64(seed))) for j in range(6)]
        total = 1 + r[0] % [10, 300, 3000, 30000, 200000][r[1] % 5]
        fps = fps_table[r[2] % len(fps_table)]
        mode = r[3] % 4
        duration = [0.0, total / fps, total / fps + (r[4] % 1000) / 997.0,
                    (r[4] % 7000) / 7.0][mode]
        target = target_table[r[5] % len(target_table)]
        maxdur = maxdur_table[(r[5] >> 8) % len(maxdur_table)]
        vp.max_duration = maxdur
        md = VideoMetadata(total_num_frames=total, fps=fps, duration=duration or None)
        idx = vp.sample_frames(md, fps=target)
        out.append([total, fps, duration, target, maxdur] + index_summary(idx))
    return out


def vllm_uniform(total, num_frames):
    """vllm/multimodal/video.py OpenCVVideoBackend.load_bytes (fps option
    unset): the frame indices it decodes."""
    n = total
    if num_frames > 0:
        n = min(num_frames, total)
    n = max(1, n)
    if n == total:
        return list(range(n))
    return np.linspace(0, total - 1, n, dtype=int).tolist()


def make_sample_uniform(n=400, seed=13):
    out = []
    for k in range(n):
        r = [int(hash32(np.uint64(3 * k + j), np.uint64(seed))) for j in range(3)]
        total = 1 + r[0] % [5, 50, 1000, 100000][r[1] % 4]
        num = [-1, 0, 1, 2, 3, 16, 32, 64, 1 + r[2] % 2000][r[2] % 9]
        out.append([total, num] + index_summary(vllm_uniform(total, num)))
    return out


def main():
    import PIL
    import torch
    import torchvision
    import transformers
    data = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "pillow": PIL.__version__,
                     "numpy": np.__version__,
                     "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "smart_resize": make_smart_resize(),
        "resize": make_resize(),
        "image": make_image_cases(),
        "video": make_video_cases(),
        "end_to_end": make_end_to_end(),
        "sample_fps": make_sample_fps(),
        "sample_uniform": make_sample_uniform(),
    }
    same, total = torch_avx2_agrees(data["resize"])
    data["versions"]["torch_avx2_kernel_same_md5"] = "%d/%d" % (same, total)
    print("torch AVX2 kernel gives the same bytes on %d/%d resize cases" % (same, total))
    both = [c for c in data["resize"] if c["torch_md5"]]
    print("PIL vs torch: %d/%d cases differ; %d of %d bytes; max level difference %d"
          % (sum(c["pil_torch_differ"] > 0 for c in both), len(both),
             sum(c["pil_torch_differ"] for c in both),
             sum(3 * c["dst"][0] * c["dst"][1] for c in both),
             max(c["pil_torch_maxdiff"] for c in both)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
