#!/usr/bin/env python3
"""
make_vision_fixtures.py: the GLM-4.5V vision references: what transformers'
GLM-4V image and video processors make of a set of media files (for the C
decoder and preprocessor), and what the tiny Glm4vMoe checkpoint computes for
prompts holding images and videos (for the C vision tower, the placeholder
expansion and M-RoPE).

Run:  /root/venv-ref/bin/python t/reference/make_vision_fixtures.py
      (versions pinned in requirements.txt beside it; the ffmpeg/ffprobe CLI
      from PATH, FFmpeg 5.1 when the committed files were made).
      --only processor|model does one half; --keep-inputs recomputes the
      references from the committed input files instead of regenerating them
      (use it when your Pillow/FFmpeg encoders differ from the pinned ones).
      make_fixtures.py rebuilds t/fixtures/glm45v-tiny from scratch and so
      deletes what this script adds there: run this one after it.

A. t/fixtures/vision/  (processor references)
  inputs/              media generated here, deterministically (seeded numpy,
                       PIL drawing, the ffmpeg CLI's lavfi test sources): a
                       photo-like JPEG, a screenshot-like PNG, extreme aspect
                       ratios (one refused: ratio > 200), tiny images, one that
                       hits max_pixels, every PIL mode a request can bring (L,
                       P, RGBA, LA, 16-bit grey, 16-bit RGB; colour keys in
                       palette, grey and RGB PNGs), EXIF orientations 1..8 in
                       JPEG and one in PNG, WebP (lossy, lossless with alpha),
                       animated GIFs (with and without a transparent index),
                       BMP, two MP4s (H.264) and one WebM (VP9).
  expected/<name>.png  the image the processor resized, as 8-bit RGB: the
                       processor's pixel_values inverted (u8 = round((x*std +
                       mean)*255)) and put back from the 2x2-block patch order
                       (MODEL.md 5.4) into rows and columns.  The script asserts
                       that normalising this PNG again gives pixel_values
                       (max error printed, < 1e-5) and that the two temporal
                       copies of every image patch are equal.
  expected/<name>.decoded.png
                       the decoded RGB before resizing, only for the small and
                       special-mode inputs, so a decoder can be checked on its
                       own; every image also has "decoded_md5".
  expected/<name>.f<k>.png
                       video frame k (of the sampled, pair-padded frames) as
                       the video processor resized it.
  pix_reference.json   one entry per case, see CASE FORMAT below.

  Images are loaded exactly as transformers loads a request's image:
  transformers.image_utils.load_image (5.23: PIL.Image.open ->
  PIL.ImageOps.exif_transpose -> .convert("RGB")); the script calls it and
  checks it against those three calls.  So an alpha channel is DROPPED, not
  composited (the processor's convert_to_rgb would composite on white, but
  it gets the RGB image load_image returns); 16-bit grey (I;16) is CLAMPED
  to 0..255 (v -> min(v, 255), not v >> 8); 16-bit RGB PNGs open as 8-bit
  RGB keeping the high byte.  One catch: a colour key survives
  convert("RGB") in im.info["transparency"] (palette, grey or RGB PNG with
  tRNS, GIF with a transparent index), and the processor's convert_to_rgb
  then turns every pixel of exactly that RGB colour WHITE before resizing.
  Those cases record "info_transparency" and "processor_input" (the RGB the
  processor really resized) besides "decoded".

  The image processor is the PIL backend, Glm4vImageProcessorPil
  (transformers.models.glm4v.image_processing_pil_glm4v): its resize is PIL's
  Image.resize(BICUBIC) on 8-bit RGB, a fixed integer algorithm that the C
  preprocessor can reproduce bit-exactly.  transformers 5 picks the
  torchvision backend by default when torchvision is installed; its uint8
  bicubic is torch's (a native uint8 kernel on AVX CPUs, a float kernel and
  one rounding elsewhere), so its output depends on the machine and differs
  from PIL's.  Pillow 13 runs the vertical pass FIRST when (H - h) > 0 and
  (H - h) > 2 (W - w), horizontal first otherwise; with the 8-bit clip
  between the passes the order shows in the output, so every image case
  records "resize_pass_order" (checked here by redoing it as two resizes).
  GLM-4.5V's settings: size {shortest_edge 12544, longest_edge 9633792},
  CLIP mean/std, patch 14, temporal 2, merge 2.

  Videos: decoded with the ffmpeg CLI to rgb24 (the exact command is in the
  JSON), metadata from ffprobe; VideoMetadata(total_num_frames, fps =
  avg_frame_rate, duration = total_num_frames / fps, as transformers' pyav,
  decord, opencv and torchvision readers set it) goes with the whole decoded
  array to Glm4vVideoProcessor (torchvision backend, the only GLM-4V video
  processor), do_sample_frames=True, fps=2, size {12544, 47040000}; the first
  clip again with longest_edge 28*28*2*40 so that the pixel budget shared by
  all frames shrinks them.  Its resize is torchvision's bicubic (antialias) on
  uint8 tensors, NOT PIL's: "pil_resize_max_diff" says how far PIL's bicubic
  lands from it on the same frames.

B. t/fixtures/glm45v-tiny/  (model references, weights untouched)
  preprocessor_config.json, video_preprocessor_config.json
                       GLM-4.5V's processor settings (above), processor_class
                       Glm4vProcessor, so AutoProcessor.from_pretrained works.
  media/               the images and the video the cases use, and
                       tall.resized.png: tall.jpg as the processor resizes it
                       (the other media are already at their processed size).
  vl_reference.json    {"fixture", "topk", "generator", "processor", "cases"}.
                       The processor is AutoProcessor.from_pretrained(dir)'s
                       Glm4vProcessor with its image processor swapped for
                       AutoImageProcessor.from_pretrained(dir, backend="pil").
                       Per case:
    "name", "messages" (OpenAI-style; media URLs file://media/..., relative
    to the fixture directory), "prompt_text" (the fixture's
    chat_template.jinja through tokenizer.apply_chat_template(tokenize=False,
    add_generation_prompt=True); the processor's apply_chat_template gives the
    same), "ids" (after Glm4vProcessor expanded the placeholders),
    "mm_token_type_ids" (0 text, 1 image, 2 video), "image_grid_thw",
    "pixel_values_shape", "image_sizes" ([w, h] as loaded) / "video_grid_thw",
    "pixel_values_videos_shape", "videos": [{"meta", "frame_indices",
    "timestamps", "pair_seconds", "frame_md5"}] (as in part A),
    "position_ids" (3 x len(ids): t, h, w rows from model.model.get_rope_index),
    "rope_delta", "image_embeds" / "video_embeds" (the vision tower's merger
    output, one row of out_hidden_size per placeholder token), then
    make_fixtures.py's write_reference fields for the whole prompt in fp32
    from the bf16 weights: "topk_ids", "topk_logits" (every position),
    "last_logits" (full vocabulary), "greedy_ids", "greedy_text" (32 tokens,
    model.generate with the pixel values), "step_topk_ids",
    "step_topk_logits".  Numbers are printed with 7 significant digits.

CASE FORMAT (pix_reference.json "cases"):
  image: {"name", "kind": "image", "file": "inputs/..", "format", "mode" (PIL
          mode as opened), "exif_orientation" (or null), "processor":
          {"min_pixels", "max_pixels", "patch_size", "temporal_patch_size",
          "merge_size", "resample"}, "decoded_size": [w, h], "decoded_md5"
          (md5 of the load_image RGB bytes, row-major), "decoded" (optional
          PNG), "info_transparency" (the colour key load_image's image kept,
          or null), "processor_input_md5" (the RGB after the processor's
          convert_to_rgb), "processor_input" and
          "processor_input_changed_pixels" (only when that differs from the
          decoded RGB), and either "error" (the processor's ValueError text) or
          "resized_size": [w, h], "grid_thw": [1, gh, gw],
          "pixel_values_shape": [n, 1176], "n_patches", "n_tokens",
          "resize_pass_order" ("horizontal-first", "vertical-first",
          "horizontal", "vertical" or "none"), "expected":
          "expected/<name>.png", "norm_roundtrip_max_err"}
  video: {"name", "kind": "video", "file", "processor": {... "fps",
          "max_duration"}, "decode_command", "probe_command", "probe" (ffprobe's
          stream/format fields as printed), "meta": {"total_frames", "fps",
          "duration"} (the VideoMetadata given to the processor),
          "decoded_size", "frame_indices", "timestamps" (idx / fps),
          "pair_seconds" (the integers Glm4vProcessor writes after each frame
          pair), "frame_md5" (md5 of each sampled frame's rgb24 bytes as the
          CLI printed them), "resized_size", "grid_thw", "pixel_values_shape",
          "n_patches", "n_tokens" (per frame pair x pairs), "expected": [PNGs],
          "norm_roundtrip_max_err", "pil_resize_max_diff",
          "pil_resize_diff_count"}
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import make_fixtures  # noqa: E402  (TOPK, GREEDY_TOKENS, PINNED)

PINNED = dict(make_fixtures.PINNED, pillow="13.0.0", torchvision="0.29.2")
TOPK = make_fixtures.TOPK
GREEDY_TOKENS = make_fixtures.GREEDY_TOKENS

IMAGE_SIZE = {"shortest_edge": 12544, "longest_edge": 9633792}      # 28*28*2*6144
VIDEO_SIZE = {"shortest_edge": 12544, "longest_edge": 47040000}     # 28*28*2*30000
BUDGET_LONGEST = 28 * 28 * 2 * 40
VIDEO_FPS = 2
PATCH, TEMPORAL, MERGE = 14, 2, 2

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# Encoders run single-threaded with bitexact muxing so reruns give the same bytes.
ENC_COMMON = ["-hide_banner", "-v", "error", "-y", "-threads", "1"]
MUX_BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]


def check_versions():
    import importlib.metadata as md
    bad = []
    for name, want in PINNED.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have != want:
            bad.append(f"{name} {have} (pinned {want})")
    if bad:
        print("warning: versions differ from the pinned ones: " + ", ".join(bad), file=sys.stderr)
    v = ffmpeg_version()
    if not v.startswith("5.1"):
        print("warning: ffmpeg %s (the committed files were made with 5.1)" % v, file=sys.stderr)


def ffmpeg_version():
    out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, check=True).stdout
    return out.split()[2]


def generator_string():
    import PIL
    import torch
    import torchvision
    import transformers
    return ("transformers %s, torch %s, torchvision %s, pillow %s, numpy %s, ffmpeg %s"
            % (transformers.__version__, torch.__version__, torchvision.__version__,
               PIL.__version__, np.__version__, ffmpeg_version()))


def g7(x):
    return float("%.7g" % x)


def md5(b):
    return hashlib.md5(b).hexdigest()


def rel(path, base):
    return os.path.relpath(path, base).replace(os.sep, "/")


# --------------------------------------------------------------------------
# input images

def smooth_field(h, w, seed):
    """Slowly varying RGB float field in 0..255 (gradients and low waves)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y /= max(h - 1, 1)
    x /= max(w - 1, 1)
    chans = []
    for c in range(3):
        a, b, p, q = rng.uniform(-1, 1, 4)
        f = 128 + 70 * a * x + 60 * b * y + 25 * np.sin(2 * np.pi * (p * 1.5 * x + q * 1.2 * y) + c)
        chans.append(f)
    return np.clip(np.stack(chans, -1), 0, 255)


def draw_shapes(im, rng, count, max_r):
    from PIL import ImageDraw
    d = ImageDraw.Draw(im)
    w, h = im.size
    for i in range(count):
        col = tuple(int(v) for v in rng.integers(20, 236, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(max_r // 4, max_r))
        kind = i % 3
        if kind == 0:
            d.ellipse([cx - r, cy - r // 2, cx + r, cy + r // 2], fill=col)
        elif kind == 1:
            pts = [(cx + int(r * math.cos(t)), cy + int(r * math.sin(t)))
                   for t in np.linspace(0, 2 * math.pi, 6, endpoint=False) + rng.uniform(0, 1)]
            d.polygon(pts, fill=col)
        else:
            d.rectangle([cx - r, cy - r // 3, cx + r // 2, cy + r // 3], fill=col, outline=(0, 0, 0))


def photo_like(w, h, seed, noise, shapes=12, blur=1.2):
    """Gradients, soft-edged shapes, sensor-like noise in one band."""
    from PIL import Image, ImageFilter
    rng = np.random.default_rng(seed)
    base = smooth_field(h, w, seed)
    im = Image.fromarray(base.round().astype(np.uint8))
    draw_shapes(im, rng, shapes, max(8, min(w, h) // 4))
    im = im.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(im).astype(np.float64)
    if noise > 0:
        band = slice(int(h * 0.62), int(h * 0.86))
        a[band] += rng.normal(0, noise, a[band].shape)
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


def screenshot_like(w, h, seed):
    from PIL import Image, ImageDraw, ImageFont
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, w, 34], fill=(46, 52, 64))
    d.rectangle([0, 34, 220, h], fill=(240, 242, 245))
    small = ImageFont.load_default()
    big = ImageFont.load_default(size=18)
    d.text((12, 9), "glm-serve - Chat completions - localhost:8080", fill=(236, 239, 244), font=big)
    words = ("the quick brown fox jumps over lazy dog vision tower patch merge rope token "
             "image video frame pixel bicubic resize decoder server request stream chunk "
             "0 1 2 3 14 28 112 6144 GLM-4.5V nginx module").split()
    for i in range(26):
        d.text((14, 48 + i * 26), "%02d  %s" % (i, rng.choice(words)), fill=(60, 60, 60), font=small)
    y = 52
    for para in range(9):
        font = big if para % 3 == 0 else small
        n = int(rng.integers(6, 16))
        line = " ".join(str(rng.choice(words)) for _ in range(n))
        col = (20, 20, 20) if para % 4 else (26, 94, 190)
        d.text((244, y), line, fill=col, font=font)
        y += 30 if font is big else 20
        if para % 3 == 2:
            d.rectangle([244, y, 244 + int(rng.integers(300, 900)), y + 44], outline=(180, 180, 180),
                        fill=(250, 250, 235))
            d.text((252, y + 14), "code: x = (u8/255 - mean) / std  # per channel", fill=(160, 30, 30),
                   font=small)
            y += 56
    d.rectangle([w - 260, h - 70, w - 20, h - 26], fill=(26, 94, 190))
    d.text((w - 236, h - 58), "Send request", fill=(255, 255, 255), font=big)
    return im


def orientation_probe(w, h):
    """An asymmetric picture (an 'F', a corner mark, a gradient) so that every
    EXIF orientation gives a different upright image."""
    from PIL import Image, ImageDraw
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(30, 220, w)[None, :]
    a[..., 2] = np.linspace(200, 40, h)[:, None]
    a[..., 1] = 90
    im = Image.fromarray(a)
    d = ImageDraw.Draw(im)
    d.rectangle([w // 8, h // 6, w // 8 + w // 10, h - h // 6], fill=(250, 250, 250))
    d.rectangle([w // 8, h // 6, w // 2, h // 6 + h // 8], fill=(250, 250, 250))
    d.rectangle([w // 8, h // 2 - h // 16, w // 3, h // 2 + h // 16], fill=(250, 250, 250))
    d.rectangle([w - w // 6, 0, w - 1, h // 5], fill=(0, 0, 0))
    return im


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)


def write_png16(path, arr):
    """A 16-bit PNG (grey [h,w] or RGB [h,w,3] uint16): PIL cannot write 16-bit RGB."""
    h, w = arr.shape[:2]
    ctype = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))
    open(path, "wb").write(data)


def make_image_inputs(d, seed):
    """Writes the image inputs into d; returns [(name, file, keep_decoded)]."""
    from PIL import Image
    cases = []

    def add(name, fname, keep_decoded=False):
        cases.append((name, fname, keep_decoded))

    photo = photo_like(1280, 800, seed + 1, noise=3.0)
    photo.save(os.path.join(d, "photo.jpg"), quality=90)
    add("photo", "photo.jpg")

    screenshot_like(1366, 768, seed + 2).save(os.path.join(d, "screen.png"), optimize=True)
    add("screen", "screen.png")

    photo_like(30, 2000, seed + 3, noise=2.0, shapes=6, blur=0.8).save(os.path.join(d, "tall_30x2000.png"))
    add("tall_30x2000", "tall_30x2000.png")
    photo_like(2400, 40, seed + 4, noise=2.0, shapes=10, blur=0.8).save(
        os.path.join(d, "wide_2400x40.jpg"), quality=90)
    add("wide_2400x40", "wide_2400x40.jpg")
    # after the <28 px upscale this is 28 x 5880: ratio 210 > 200, refused
    photo_like(10, 2100, seed + 5, noise=0, shapes=4, blur=0.5).save(os.path.join(d, "refused_10x2100.png"))
    add("refused_10x2100", "refused_10x2100.png")
    # 14 x 2800 upscales to exactly 28 x 5600: ratio 200, the limit, accepted
    photo_like(14, 2800, seed + 6, noise=0, shapes=4, blur=0.5).save(os.path.join(d, "ratio200_14x2800.png"))
    add("ratio200_14x2800", "ratio200_14x2800.png")

    photo_like(10, 10, seed + 7, noise=6.0, shapes=2, blur=0.3).save(os.path.join(d, "tiny_10x10.png"))
    add("tiny_10x10", "tiny_10x10.png", True)
    photo_like(27, 50, seed + 8, noise=6.0, shapes=3, blur=0.3).save(os.path.join(d, "tiny_27x50.png"))
    add("tiny_27x50", "tiny_27x50.png", True)

    # smooth so that it stays small; 4000x3000 is over max_pixels
    huge = photo_like(4000, 3000, seed + 9, noise=0, shapes=10, blur=6.0)
    huge.save(os.path.join(d, "huge_4000x3000.jpg"), quality=90)
    add("huge_4000x3000", "huge_4000x3000.jpg")

    # ---- PIL modes
    base = photo_like(160, 120, seed + 10, noise=4.0, shapes=6, blur=0.8)
    base.convert("L").save(os.path.join(d, "grey.jpg"), quality=90)
    add("grey_jpeg", "grey.jpg", True)
    base.convert("L").save(os.path.join(d, "grey.png"))
    add("grey_png", "grey.png", True)
    pal = base.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(os.path.join(d, "palette.png"))
    add("palette", "palette.png", True)
    pal.save(os.path.join(d, "palette_trns.png"), transparency=3)
    add("palette_trns", "palette_trns.png", True)
    base.convert("L").save(os.path.join(d, "grey_trns.png"), transparency=int(np.asarray(base.convert("L"))[60, 80]))
    add("grey_trns", "grey_trns.png", True)
    rgb_key = tuple(int(v) for v in np.asarray(base)[30, 40])
    base.save(os.path.join(d, "rgb_trns.png"), transparency=rgb_key)
    add("rgb_trns", "rgb_trns.png", True)
    rgba = base.convert("RGBA")
    yy, xx = np.mgrid[0:120, 0:160]
    alpha = np.clip(255 * (xx / 159.0) * (1.0 - yy / 240.0), 0, 255).astype(np.uint8)
    alpha[10:30, 10:50] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(os.path.join(d, "rgba.png"))
    add("rgba", "rgba.png", True)
    la = base.convert("L").convert("LA")
    la.putalpha(Image.fromarray(alpha))
    la.save(os.path.join(d, "la.png"))
    add("la", "la.png", True)
    # 16-bit grey: one half 0..700 (partly under 256), the other half full range
    g = np.zeros((120, 160), np.uint16)
    g[:, :80] = np.clip(np.linspace(0, 700, 80)[None, :] + 40 * np.sin(yy[:, :80] / 7.0), 0, 65535)
    g[:, 80:] = np.linspace(0, 65535, 80)[None, :].astype(np.uint16)
    write_png16(os.path.join(d, "grey16.png"), g)
    add("grey16", "grey16.png", True)
    rgb16 = (np.asarray(base).astype(np.uint16) * 257)
    rgb16 = rgb16 + (np.arange(160, dtype=np.uint16)[None, :, None] * 97 % 256)   # low bytes vary
    write_png16(os.path.join(d, "rgb16.png"), rgb16)
    add("rgb16", "rgb16.png", True)

    # ---- EXIF orientation (stored pixels are the probe; the tag says how to show them)
    probe = orientation_probe(120, 60)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        probe.save(os.path.join(d, "exif%d.jpg" % o), quality=92, exif=ex)
        add("exif%d_jpeg" % o, "exif%d.jpg" % o, True)
    ex = Image.Exif()
    ex[0x0112] = 6
    probe.save(os.path.join(d, "exif6.png"), exif=ex)
    add("exif6_png", "exif6.png", True)

    # ---- other containers
    base.save(os.path.join(d, "lossy.webp"), quality=80, method=4)
    add("webp_lossy", "lossy.webp", True)
    rgba.save(os.path.join(d, "lossless_alpha.webp"), lossless=True)
    add("webp_lossless_alpha", "lossless_alpha.webp", True)
    frames = [photo_like(96, 64, seed + 20 + k, noise=0, shapes=4, blur=0.5).quantize(
        colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for k in range(4)]
    frames[0].save(os.path.join(d, "anim.gif"), save_all=True, append_images=frames[1:],
                   duration=120, loop=0)
    add("gif_anim", "anim.gif", True)
    frames[0].save(os.path.join(d, "anim_trns.gif"), save_all=True, append_images=frames[1:],
                   duration=120, loop=0, transparency=2)
    add("gif_anim_trns", "anim_trns.gif", True)
    base.save(os.path.join(d, "rgb.bmp"))
    add("bmp", "rgb.bmp", True)
    return cases


# --------------------------------------------------------------------------
# input videos

def make_videos(d):
    """lavfi test sources encoded by the ffmpeg CLI; returns [(name, file)]."""
    specs = [
        ("clip_mp4", "clip.mp4", "testsrc2=size=320x240:rate=10:duration=3",
         ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium", "-crf", "32"]),
        ("odd_mp4", "odd_2997.mp4", "testsrc2=size=176x144:rate=30000/1001:duration=1.7",
         ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium", "-crf", "32"]),
        ("clip_webm", "clip.webm", "testsrc2=size=160x120:rate=12:duration=2.5",
         ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "45",
          "-deadline", "good", "-cpu-used", "4", "-row-mt", "0"]),
    ]
    out = []
    for name, fname, src, enc in specs:
        path = os.path.join(d, fname)
        cmd = [FFMPEG] + ENC_COMMON + ["-f", "lavfi", "-i", src] + enc + ["-an"] + MUX_BITEXACT + [path]
        subprocess.run(cmd, check=True)
        out.append((name, fname))
    return out


def probe_video(path):
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
           "stream=codec_name,width,height,pix_fmt,nb_frames,nb_read_frames,avg_frame_rate,"
           "r_frame_rate,time_base,duration:format=duration", "-of", "json", path]
    j = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    s = j["streams"][0]
    probe = {k: s.get(k) for k in ("codec_name", "width", "height", "pix_fmt", "nb_frames",
                                   "nb_read_frames", "avg_frame_rate", "r_frame_rate",
                                   "time_base", "duration")}
    probe["format_duration"] = j.get("format", {}).get("duration")
    return cmd, probe


def decode_video(path, w, h):
    cmd = [FFMPEG, "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    n = len(raw) // (w * h * 3)
    assert n * w * h * 3 == len(raw), "partial frame from ffmpeg"
    return cmd, np.frombuffer(raw, np.uint8).reshape(n, h, w, 3)


def video_meta(probe):
    from fractions import Fraction
    nb = probe.get("nb_frames")
    total = int(nb) if nb not in (None, "N/A") else int(probe["nb_read_frames"])
    fps = float(Fraction(probe["avg_frame_rate"]))
    return {"total_frames": total, "fps": fps, "duration": total / fps}


# --------------------------------------------------------------------------
# patch order <-> image

def unpatchify_image(pv, gh, gw):
    """[gh*gw, 3*2*14*14] (rows in 2x2-block order, (C,T,py,px) inside) ->
    [H, W, 3] float for t=0, and the max |t0 - t1|."""
    a = pv.reshape(gh // MERGE, gw // MERGE, MERGE, MERGE, 3, TEMPORAL, PATCH, PATCH)
    tdiff = float(np.abs(a[:, :, :, :, :, 0] - a[:, :, :, :, :, 1]).max())
    a = a[:, :, :, :, :, 0]                                   # (bh, bw, mh, mw, C, py, px)
    a = a.transpose(4, 0, 2, 5, 1, 3, 6)                      # (C, bh, mh, py, bw, mw, px)
    return a.reshape(3, gh * PATCH, gw * PATCH).transpose(1, 2, 0), tdiff


def unpatchify_video(pv, gt, gh, gw):
    """[gt*gh*gw, 1176] -> [2*gt, H, W, 3] float."""
    a = pv.reshape(gt, gh // MERGE, gw // MERGE, MERGE, MERGE, 3, TEMPORAL, PATCH, PATCH)
    a = a.transpose(0, 6, 5, 1, 3, 7, 2, 4, 8)                # (gt, t, C, bh, mh, py, bw, mw, px)
    a = a.reshape(gt * TEMPORAL, 3, gh * PATCH, gw * PATCH)
    return a.transpose(0, 2, 3, 1)


def denormalise(x, mean, std):
    """Normalised values -> uint8, asserting they sit on the uint8 lattice."""
    v = (x.astype(np.float64) * np.asarray(std) + np.asarray(mean)) * 255.0
    r = np.round(v)
    off = float(np.abs(v - r).max()) if v.size else 0.0
    assert off < 1e-3, "pixel values are not (u8/255 - mean)/std: off-lattice by %g" % off
    assert r.min() >= 0 and r.max() <= 255
    return r.astype(np.uint8)


def renorm_err(u8, x, mean, std):
    ref = (u8.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return float(np.abs(ref - x.astype(np.float64)).max())


def save_png(path, rgb):
    from PIL import Image
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, optimize=True)


# --------------------------------------------------------------------------
# A. processor references

def load_request_image(path):
    """transformers' load_image, checked against its three PIL calls."""
    import PIL.Image
    import PIL.ImageOps
    from transformers.image_utils import load_image
    im = load_image(path)
    mine = PIL.ImageOps.exif_transpose(PIL.Image.open(path)).convert("RGB")
    assert im.mode == "RGB" and im.size == mine.size and im.tobytes() == mine.tobytes(), path
    return im


def image_processor():
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
    return Glm4vImageProcessorPil(size=dict(IMAGE_SIZE), patch_size=PATCH,
                                  temporal_patch_size=TEMPORAL, merge_size=MERGE)


def video_processor(longest_edge):
    from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor
    return Glm4vVideoProcessor(size={"shortest_edge": VIDEO_SIZE["shortest_edge"], "longest_edge": longest_edge},
                               patch_size=PATCH, temporal_patch_size=TEMPORAL, merge_size=MERGE,
                               fps=VIDEO_FPS, do_sample_frames=True)


def pil_pass_order(im, w, h, resized):
    """Which 1-D pass Pillow 13 runs first (Resample.c, ImagingResampleInner):
    vertical first when the height shrinks by more than twice what the width
    shrinks, i.e. (H - h) > 0 and (H - h) > 2 (W - w); otherwise horizontal
    first.  The 8-bit clip between the passes makes the order visible, so it is
    checked here by doing the two passes as two separate resizes."""
    from PIL import Image
    W, H = im.size
    if (W, H) == (w, h):
        return "none"
    if W == w or H == h:
        return "vertical" if W == w else "horizontal"
    vertical_first = (H - h) > 0 and (H - h) > (W - w) * 2
    if vertical_first:
        two = im.resize((W, h), Image.BICUBIC).resize((w, h), Image.BICUBIC)
    else:
        two = im.resize((w, H), Image.BICUBIC).resize((w, h), Image.BICUBIC)
    assert np.array_equal(np.asarray(two), resized), "Pillow's pass order is not the documented one"
    return "vertical-first" if vertical_first else "horizontal-first"


def run_image_case(proc, vdir, name, fname, keep_decoded):
    from PIL import Image
    path = os.path.join(vdir, "inputs", fname)
    opened = Image.open(path)
    orient = opened.getexif().get(0x0112)
    entry = {"name": name, "kind": "image", "file": "inputs/" + fname, "format": opened.format,
             "mode": opened.mode, "exif_orientation": orient,
             "processor": {"min_pixels": IMAGE_SIZE["shortest_edge"], "max_pixels": IMAGE_SIZE["longest_edge"],
                           "patch_size": PATCH, "temporal_patch_size": TEMPORAL, "merge_size": MERGE,
                           "resample": "PIL.Image.BICUBIC"}}
    im = load_request_image(path)
    dec = np.asarray(im)
    entry["decoded_size"] = [im.width, im.height]
    entry["decoded_md5"] = md5(dec.tobytes())
    if keep_decoded:
        entry["decoded"] = "expected/%s.decoded.png" % name
        save_png(os.path.join(vdir, entry["decoded"]), dec)
    # What the processor resizes: its own convert_to_rgb on load_image's
    # result.  That is the same RGB, except when PIL kept a colour key in
    # im.info["transparency"] (palette/grey/RGB PNG with tRNS, GIF with a
    # transparent index): then every pixel of that exact colour becomes
    # white (RGBA with alpha 0 there, alpha_composite over white).
    from transformers.image_transforms import convert_to_rgb
    pin = convert_to_rgb(im, return_numpy=True)
    entry["info_transparency"] = im.info.get("transparency")
    entry["processor_input_md5"] = md5(np.ascontiguousarray(pin).tobytes())
    if not np.array_equal(pin, dec):
        entry["processor_input"] = "expected/%s.input.png" % name
        save_png(os.path.join(vdir, entry["processor_input"]), pin)
        entry["processor_input_changed_pixels"] = int((pin != dec).any(-1).sum())
    try:
        out = proc(images=[im], return_tensors="np")
    except ValueError as e:
        entry["error"] = str(e)
        print("  %-22s %-9s %4dx%-4d  refused: %s" % (name, opened.mode, im.width, im.height, e))
        return entry
    pv = np.asarray(out["pixel_values"])
    t, gh, gw = (int(v) for v in out["image_grid_thw"][0])
    mean, std = proc.image_mean, proc.image_std
    img, tdiff = unpatchify_image(pv, gh, gw)
    assert tdiff == 0.0, "%s: the two temporal copies differ by %g" % (name, tdiff)
    u8 = denormalise(img, mean, std)
    png = "expected/%s.png" % name
    save_png(os.path.join(vdir, png), u8)
    back = np.asarray(Image.open(os.path.join(vdir, png)).convert("RGB"))
    assert np.array_equal(back, u8)
    # renormalise what the PNG holds and compare with the processor's own rows
    err = renorm_err(back, img, mean, std)
    assert err < 1e-5, "%s: renormalised PNG differs from pixel_values by %g" % (name, err)
    order = pil_pass_order(Image.fromarray(pin), gw * PATCH, gh * PATCH, u8)
    entry.update({"resized_size": [gw * PATCH, gh * PATCH], "grid_thw": [t, gh, gw],
                  "resize_pass_order": order,
                  "pixel_values_shape": list(pv.shape), "n_patches": t * gh * gw,
                  "n_tokens": t * gh * gw // (MERGE * MERGE), "expected": png,
                  "norm_roundtrip_max_err": float("%.3g" % err)})
    print("  %-22s %-9s %4dx%-4d -> %4dx%-4d grid %s  renorm err %.2e"
          % (name, opened.mode, im.width, im.height, gw * PATCH, gh * PATCH, [t, gh, gw], err))
    return entry


def run_video(vproc, probe, frames):
    """The video processor on the whole decoded array, as transformers would
    after reading the file; returns the output and the VideoMetadata used."""
    from transformers.video_utils import VideoMetadata
    m = video_meta(probe)
    meta = VideoMetadata(total_num_frames=m["total_frames"], fps=m["fps"], duration=m["duration"],
                         width=frames.shape[2], height=frames.shape[1], video_backend="ffmpeg-cli")
    out = vproc(videos=[frames], video_metadata=[meta], return_metadata=True, return_tensors="pt")
    return out, m


def frames_of(out):
    pv = out["pixel_values_videos"].numpy()
    gt, gh, gw = (int(v) for v in out["video_grid_thw"][0])
    return pv, gt, gh, gw


def run_video_case(vdir, name, fname, longest_edge):
    from PIL import Image
    path = os.path.join(vdir, "inputs", fname)
    probe_cmd, probe = probe_video(path)
    w, h = int(probe["width"]), int(probe["height"])
    dec_cmd, frames = decode_video(path, w, h)
    vproc = video_processor(longest_edge)
    out, m = run_video(vproc, probe, frames)
    assert frames.shape[0] == m["total_frames"], \
        "%s: ffmpeg gave %d frames, metadata says %d" % (name, frames.shape[0], m["total_frames"])
    md = out["video_metadata"][0]
    idx = [int(i) for i in md.frames_indices]
    # the processor's own sampler, called directly, must agree
    again = vproc.sample_frames(md, fps=VIDEO_FPS)
    assert [int(i) for i in again] == idx
    timestamps = [float(t) for t in md.timestamps]
    pv, gt, gh, gw = frames_of(out)
    mean, std = vproc.image_mean, vproc.image_std
    fl = unpatchify_video(pv, gt, gh, gw)
    assert fl.shape[0] == len(idx)
    exp, err = [], 0.0
    pil_max, pil_count = 0, 0
    for k in range(fl.shape[0]):
        u8 = denormalise(fl[k], mean, std)
        png = "expected/%s.f%d.png" % (name, k)
        save_png(os.path.join(vdir, png), u8)
        back = np.asarray(Image.open(os.path.join(vdir, png)).convert("RGB"))
        assert np.array_equal(back, u8)
        err = max(err, renorm_err(back, fl[k], mean, std))
        exp.append(png)
        pil = np.asarray(Image.fromarray(frames[idx[k]]).resize((gw * PATCH, gh * PATCH), Image.BICUBIC))
        dd = np.abs(pil.astype(int) - u8.astype(int))
        pil_max, pil_count = max(pil_max, int(dd.max())), pil_count + int((dd > 0).sum())
    assert err < 1e-5, "%s: renormalised frames differ by %g" % (name, err)
    # what Glm4vProcessor.replace_video_token prints after each frame pair
    pair_seconds = [int(t) for t in timestamps[::2]][:gt]
    entry = {
        "name": name, "kind": "video", "file": "inputs/" + fname,
        "processor": {"min_pixels": VIDEO_SIZE["shortest_edge"], "max_pixels": longest_edge,
                      "patch_size": PATCH, "temporal_patch_size": TEMPORAL, "merge_size": MERGE,
                      "fps": VIDEO_FPS, "max_duration": vproc.max_duration, "do_sample_frames": True,
                      "resample": "torchvision bicubic, antialias, uint8"},
        "decode_command": " ".join("F" if a == path else a for a in dec_cmd),
        "probe_command": " ".join("F" if a == path else a for a in probe_cmd),
        "probe": probe, "meta": m,
        "decoded_size": [w, h], "decoded_frames": int(frames.shape[0]),
        "frame_indices": idx, "timestamps": [g7(t) for t in timestamps], "pair_seconds": pair_seconds,
        "frame_md5": [md5(frames[i].tobytes()) for i in idx],
        "resized_size": [gw * PATCH, gh * PATCH], "grid_thw": [gt, gh, gw],
        "pixel_values_shape": list(pv.shape), "n_patches": gt * gh * gw,
        "n_tokens": gt * gh * gw // (MERGE * MERGE), "expected": exp,
        "norm_roundtrip_max_err": float("%.3g" % err),
        "pil_resize_max_diff": pil_max, "pil_resize_diff_count": pil_count,
    }
    print("  %-22s %dx%d %d frames %.5g fps -> idx %s secs %s grid %s  renorm err %.2e  PIL vs tv max %d (%d values)"
          % (name, w, h, m["total_frames"], m["fps"], idx, pair_seconds, [gt, gh, gw], err, pil_max, pil_count))
    return entry


def processor_references(vdir, seed, keep_inputs):
    inputs = os.path.join(vdir, "inputs")
    expected = os.path.join(vdir, "expected")
    if not keep_inputs:
        shutil.rmtree(inputs, ignore_errors=True)
    shutil.rmtree(expected, ignore_errors=True)
    os.makedirs(inputs, exist_ok=True)
    os.makedirs(expected)
    if keep_inputs:
        # the names come from the generator; only the files are reused
        tmp = os.path.join(vdir, ".scratch")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        images = make_image_inputs(tmp, seed)
        videos = [(n, f) for n, f in [("clip_mp4", "clip.mp4"), ("odd_mp4", "odd_2997.mp4"),
                                      ("clip_webm", "clip.webm")]]
        shutil.rmtree(tmp)
    else:
        images = make_image_inputs(inputs, seed)
        videos = make_videos(inputs)
    proc = image_processor()
    cases = []
    print("images (load_image -> Glm4vImageProcessorPil, size %s):" % IMAGE_SIZE)
    for name, fname, keep in images:
        cases.append(run_image_case(proc, vdir, name, fname, keep))
    print("videos (ffmpeg CLI rgb24 -> Glm4vVideoProcessor, fps %d):" % VIDEO_FPS)
    for name, fname in videos:
        cases.append(run_video_case(vdir, name, fname, VIDEO_SIZE["longest_edge"]))
    cases.append(run_video_case(vdir, "clip_mp4_budget", "clip.mp4", BUDGET_LONGEST))
    ref = {"generator": generator_string(),
           "image_mean": [float(v) for v in proc.image_mean], "image_std": [float(v) for v in proc.image_std],
           "load": "transformers.image_utils.load_image: PIL.Image.open -> PIL.ImageOps.exif_transpose -> "
                   ".convert('RGB')",
           "cases": cases}
    with open(os.path.join(vdir, "pix_reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(vdir) for fn in fns)
    print("vision: %d cases, %.2f MB in %s" % (len(cases), total / 1e6, rel(vdir, ROOT)))


# --------------------------------------------------------------------------
# B. model references

def write_processor_configs(mdir):
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    common = {"do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
              "do_normalize": True, "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD),
              "do_convert_rgb": True, "patch_size": PATCH, "temporal_patch_size": TEMPORAL,
              "merge_size": MERGE, "processor_class": "Glm4vProcessor"}
    img = dict(common, image_processor_type="Glm4vImageProcessor", size=dict(IMAGE_SIZE))
    vid = dict(common, video_processor_type="Glm4vVideoProcessor", size=dict(VIDEO_SIZE),
               do_sample_frames=True, fps=VIDEO_FPS, max_duration=300)
    for fname, obj in (("preprocessor_config.json", img), ("video_preprocessor_config.json", vid)):
        with open(os.path.join(mdir, fname), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def make_model_media(media):
    shutil.rmtree(media, ignore_errors=True)
    os.makedirs(media)
    photo_like(112, 84, 7101, noise=5.0, shapes=5, blur=0.6).save(os.path.join(media, "cat.png"))
    photo_like(70, 150, 7102, noise=5.0, shapes=4, blur=0.6).save(os.path.join(media, "tall.jpg"), quality=90)
    # the only medium the processor resizes (70x150 -> 56x140); the others are
    # already at their processed size.  The resized image, as in part A:
    from transformers.image_utils import load_image
    proc = image_processor()
    out = proc(images=[load_image(os.path.join(media, "tall.jpg"))], return_tensors="np")
    t, gh, gw = (int(v) for v in out["image_grid_thw"][0])
    img, _ = unpatchify_image(np.asarray(out["pixel_values"]), gh, gw)
    save_png(os.path.join(media, "tall.resized.png"), denormalise(img, proc.image_mean, proc.image_std))
    photo_like(56, 140, 7103, noise=5.0, shapes=4, blur=0.6).save(os.path.join(media, "odd.png"))
    cmd = [FFMPEG] + ENC_COMMON + ["-f", "lavfi", "-i", "testsrc2=size=112x84:rate=4:duration=2",
                                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "30", "-an"] \
        + MUX_BITEXACT + [os.path.join(media, "clip.mp4")]
    subprocess.run(cmd, check=True)


def img_part(name):
    return {"type": "image_url", "image_url": {"url": "file://media/" + name}}


VL_CASES = [
    ("image", [{"role": "user", "content": [
        {"type": "text", "text": "Describe this picture."}, img_part("cat.png")]}]),
    ("two-images", [{"role": "user", "content": [
        img_part("cat.png"), {"type": "text", "text": "and then this one, taller:"},
        img_part("tall.jpg"), {"type": "text", "text": "What differs?"}]}]),
    ("image-grid-odd", [{"role": "user", "content": [
        img_part("odd.png"), {"type": "text", "text": "What is in the image?"}]}]),
    ("video", [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": "file://media/clip.mp4"}},
        {"type": "text", "text": "What happens in this video?"}]}]),
    ("multi-turn", [
        {"role": "user", "content": [img_part("cat.png"), {"type": "text", "text": "What colour is it?"}]},
        {"role": "assistant", "content": "Mostly green and blue."},
        {"role": "user", "content": "And the shapes?"}]),
]


def media_of(messages, mdir):
    images, videos = [], []
    for m in messages:
        if isinstance(m["content"], str):
            continue
        for p in m["content"]:
            if p["type"] == "image_url":
                images.append(os.path.join(mdir, p["image_url"]["url"][len("file://"):]))
            elif p["type"] == "video_url":
                videos.append(os.path.join(mdir, p["video_url"]["url"][len("file://"):]))
    return images, videos


def model_references(mdir):
    import torch
    from transformers import (AutoImageProcessor, AutoProcessor, AutoTokenizer, GenerationConfig,
                              Glm4vMoeForConditionalGeneration)
    from transformers.image_utils import load_image
    from transformers.video_utils import VideoMetadata
    write_processor_configs(mdir)
    make_model_media(os.path.join(mdir, "media"))
    tok = AutoTokenizer.from_pretrained(mdir)
    # AutoProcessor loads the fixture as a user would (and picks torchvision for
    # images); the references use the same processor with the PIL image backend
    # (backend="pil" cannot go to AutoProcessor: the video side has no PIL one).
    auto = AutoProcessor.from_pretrained(mdir)
    assert type(auto).__name__ == "Glm4vProcessor", type(auto)
    proc = type(auto)(image_processor=AutoImageProcessor.from_pretrained(mdir, backend="pil"),
                      tokenizer=auto.tokenizer, video_processor=auto.video_processor,
                      chat_template=auto.chat_template)
    ip, vp = proc.image_processor, proc.video_processor
    assert type(ip).__name__ == "Glm4vImageProcessorPil" and type(vp).__name__ == "Glm4vVideoProcessor"
    assert (ip.size.shortest_edge, ip.size.longest_edge) == (IMAGE_SIZE["shortest_edge"], IMAGE_SIZE["longest_edge"])
    assert (vp.size.shortest_edge, vp.size.longest_edge) == (VIDEO_SIZE["shortest_edge"], VIDEO_SIZE["longest_edge"])
    assert vp.fps == VIDEO_FPS and vp.do_sample_frames
    assert type(proc.image_processor).__name__ == "Glm4vImageProcessorPil", type(proc.image_processor)
    assert type(proc.video_processor).__name__ == "Glm4vVideoProcessor", type(proc.video_processor)
    model = Glm4vMoeForConditionalGeneration.from_pretrained(mdir, dtype=torch.float32)
    model.eval()
    gen = GenerationConfig.from_pretrained(mdir)
    ref = {"fixture": "glm45v-tiny", "topk": TOPK,
           "generator": generator_string() + ", fp32 from bf16 weights",
           "processor": "Glm4vProcessor as AutoProcessor.from_pretrained(dir) builds it, with the image "
                        "processor from AutoImageProcessor.from_pretrained(dir, backend='pil') "
                        "(Glm4vImageProcessorPil); videos through Glm4vVideoProcessor",
           "cases": []}
    gaps = []
    for name, messages in VL_CASES:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ptext = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert ptext == text, "processor and tokenizer render the template differently"
        image_paths, video_paths = media_of(messages, mdir)
        kw = {}
        case = {"name": name, "messages": messages, "prompt_text": text}
        if image_paths:
            kw["images"] = [load_image(p) for p in image_paths]
        if video_paths:
            vids, metas, vinfo = [], [], []
            for p in video_paths:
                _, probe = probe_video(p)
                _, frames = decode_video(p, int(probe["width"]), int(probe["height"]))
                m = video_meta(probe)
                vids.append(frames)
                metas.append(VideoMetadata(total_num_frames=m["total_frames"], fps=m["fps"],
                                           duration=m["duration"], width=frames.shape[2],
                                           height=frames.shape[1], video_backend="ffmpeg-cli"))
                vinfo.append({"meta": m, "frames": frames})
            kw["videos"] = vids
            kw["video_metadata"] = metas
        inputs = proc(text=[text], return_tensors="pt", return_metadata=bool(video_paths), **kw)
        ids = inputs["input_ids"][0].tolist()
        case["ids"] = ids
        case["mm_token_type_ids"] = inputs["mm_token_type_ids"][0].tolist()
        if "image_grid_thw" in inputs:
            case["image_grid_thw"] = inputs["image_grid_thw"].tolist()
            case["pixel_values_shape"] = list(inputs["pixel_values"].shape)
            case["image_sizes"] = [[im.width, im.height] for im in kw["images"]]
        if "video_grid_thw" in inputs:
            case["video_grid_thw"] = inputs["video_grid_thw"].tolist()
            case["pixel_values_videos_shape"] = list(inputs["pixel_values_videos"].shape)
            case["videos"] = []
            # the metadata the processor expanded <|video|> with; a separate
            # video-processor call on fresh metadata must agree
            for md, vi, frames in zip(inputs["video_metadata"], vinfo, vids):
                idx = [int(i) for i in md.frames_indices]
                fresh = VideoMetadata(total_num_frames=vi["meta"]["total_frames"], fps=vi["meta"]["fps"],
                                      duration=vi["meta"]["duration"])
                alone = proc.video_processor(videos=[frames], video_metadata=[fresh], return_metadata=True,
                                             return_tensors="pt")
                assert [int(i) for i in alone["video_metadata"][0].frames_indices] == idx
                assert torch.equal(alone["pixel_values_videos"], inputs["pixel_values_videos"])
                # the pair timestamps are in the expanded prompt, as text
                expanded = tok.decode(ids)
                for sec in [int(t) for t in md.timestamps[::2]]:
                    assert "<|end_of_image|>%d" % sec in expanded
                case["videos"].append({
                    "meta": vi["meta"], "frame_indices": idx,
                    "timestamps": [g7(t) for t in md.timestamps],
                    "pair_seconds": [int(t) for t in md.timestamps[::2]],
                    "frame_md5": [md5(vi["frames"][i].tobytes()) for i in idx]})
        model_inputs = {k: v for k, v in inputs.items() if k != "video_metadata"}
        model.model.rope_deltas = None
        pos, delta = model.model.get_rope_index(
            inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"), video_grid_thw=inputs.get("video_grid_thw"))
        case["position_ids"] = pos[:, 0].tolist()
        case["rope_delta"] = int(delta[0, 0])
        with torch.no_grad():
            # the vision tower's output rows (merger output, one per placeholder
            # token), so the tower can be checked before the language model
            if "pixel_values" in inputs:
                emb = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
                case["image_embeds"] = [[g7(v) for v in r] for r in torch.cat(emb).float().tolist()]
            if "pixel_values_videos" in inputs:
                emb = model.model.get_video_features(inputs["pixel_values_videos"],
                                                     inputs["video_grid_thw"]).pooler_output
                case["video_embeds"] = [[g7(v) for v in r] for r in torch.cat(emb).float().tolist()]
            model.model.rope_deltas = None
            logits = model(**model_inputs).logits[0].float()
            model.model.rope_deltas = None
            out = model.generate(**model_inputs, max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                 eos_token_id=gen.eos_token_id, pad_token_id=gen.pad_token_id,
                                 output_logits=True, return_dict_in_generate=True,
                                 temperature=None, top_p=None, top_k=None)
        new = out.sequences[0, len(ids):].tolist()
        step_logits = [s[0].float() for s in out.logits]
        tv, ti = logits.topk(TOPK, dim=-1)
        sv, si = zip(*[s.topk(TOPK) for s in step_logits]) if step_logits else ((), ())
        case.update({
            "topk_ids": ti.tolist(), "topk_logits": [[g7(v) for v in r] for r in tv.tolist()],
            "last_logits": [g7(v) for v in logits[-1].tolist()],
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "step_topk_ids": [s.tolist() for s in si],
            "step_topk_logits": [[g7(v) for v in s.tolist()] for s in sv],
        })
        # the greedy continuation's first step is the prompt's last position
        assert si and si[0][0].item() == ti[-1][0].item()
        ref["cases"].append(case)
        g = [row[0] - row[1] for row in case["step_topk_logits"]]
        gaps += g
        n_vis = sum(1 for t in case["mm_token_type_ids"] if t)
        print("  %-15s %4d ids (%3d vision), grids %s%s, rope delta %d, greedy %d tokens, min gap %.2e"
              % (name, len(ids), n_vis, case.get("image_grid_thw", ""), case.get("video_grid_thw", ""),
                 case["rope_delta"], len(new), min(g) if g else 0.0))
    with open(os.path.join(mdir, "vl_reference.json"), "w") as f:
        json.dump(ref, f, ensure_ascii=False)
    print("glm45v-tiny: %d cases, min top1-top2 logit gap over greedy steps %.2e"
          % (len(VL_CASES), min(gaps) if gaps else 0.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "t", "fixtures"))
    ap.add_argument("--seed", type=int, default=4545)
    ap.add_argument("--only", choices=["processor", "model"], default=None)
    ap.add_argument("--keep-inputs", action="store_true",
                    help="reuse t/fixtures/vision/inputs instead of regenerating them")
    args = ap.parse_args()
    check_versions()
    fx = os.path.abspath(args.fixtures)
    if args.only in (None, "processor"):
        processor_references(os.path.join(fx, "vision"), args.seed, args.keep_inputs)
    if args.only in (None, "model"):
        model_references(os.path.join(fx, "glm45v-tiny"))


if __name__ == "__main__":
    main()
