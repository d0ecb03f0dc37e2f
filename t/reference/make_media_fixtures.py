#!/usr/bin/env python3
"""
make_media_fixtures.py: the small image/video corpus and the reference
decodes that t/unit/test_media_decode.c compares engine/media_*.c against.

Images: the reference is what transformers does to an image,
    PIL.Image.open(f) -> ImageOps.exif_transpose -> .convert("RGB")
(Pillow 13).  Videos: the reference is the ffmpeg CLI (5.1),
    ffmpeg -v error -i F -fps_mode passthrough -f rawvideo -pix_fmt rgb24 -
(passthrough: frame k of the output is the k-th decoded frame; for these
constant-rate files the plain command gives the same bytes, checked below).

Every file is written here from code, a few KB each: PIL's own encoders for
the ordinary cases and small hand-written encoders (PNG chunks, GIF LZW, BMP
headers, EXIF/TIFF blocks) for the modes and corner cases PIL's encoders do
not produce: every PNG bit depth and colour type, palettes with tRNS and with
indices past their end, Adam7, eXIf / "Raw profile type exif" / XMP
orientations, GIF transparency and frame offsets, BMP bitfields, RLE and the
grey-palette quirks, JPEG in all eight EXIF orientations, CMYK.  A file PIL
refuses is kept with "error": the engine must refuse it too.

Writes t/fixtures/media/<name>.<ext>, t/fixtures/media/expected/<name>.png
(the expected RGB, for diagnostics when an md5 differs; for videos the
sampled frames stacked vertically) and t/fixtures/media/decode_reference.json:
  {"files": [
    {"name", "file", "kind": "image", "width", "height", "md5", "expected",
     "note"} | {"name", "file", "kind": "image", "error": "<PIL's message>"} |
    {"name", "file", "kind": "video", "width", "height", "total_frames",
     "fps", "duration", "frame_md5": [every frame], "sample": [indices the
     uniform sampler picks], "expected", "note"}]}
The uniform sampler: n = 8 frames, index i*(total-1)//(n-1).

Run: /root/venv-ref/bin/python t/reference/make_media_fixtures.py
(Pillow 13.0.0, numpy; ffmpeg and ffprobe 5.1 on the PATH).  Rerunnable: it
rewrites t/fixtures/media from scratch.
"""
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "t", "fixtures", "media")
SAMPLE_N = 8

files = []


# ---------------------------------------------------------------- content

def pattern(w, h, seed=0):
    """Smooth gradients, hard edges and a little noise: something every codec
    has to work on, and asymmetric so a wrong transposition shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1))
    g = (y * 255 // max(h - 1, 1))
    b = ((x + 2 * y) * 7) % 256
    img = np.stack([r, g, b], -1).astype(np.int32)
    img[h // 4:h // 2, w // 5:w // 2] = [250, 30, 40]          # a red block, top left
    img[(3 * h) // 4:, (2 * w) // 3:] = [20, 40, 230]          # a blue one, bottom right
    img += rng.integers(-12, 13, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def indices(w, h, n, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x // 3 + y // 2) % n
    noise = rng.integers(0, n, (h, w))
    return np.where(rng.random((h, w)) < 0.3, noise, base).astype(np.uint8)


def palette(n, seed=0):
    rng = np.random.default_rng(seed + 100)
    return bytes(rng.integers(0, 256, 3 * n).astype(np.uint8))


# ---------------------------------------------------------------- writers

def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)


def png_filter_rows(rows, bpp, filters):
    """Applies PNG filter types (cycling through `filters`) to raw rows."""
    out = []
    prev = bytes(len(rows[0]))
    for i, row in enumerate(rows):
        f = filters[i % len(filters)]
        res = bytearray()
        for j, v in enumerate(row):
            a = row[j - bpp] if j >= bpp else 0
            b = prev[j]
            c = prev[j - bpp] if j >= bpp else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            res.append((v - p) & 255)
        out.append(bytes([f]) + bytes(res))
        prev = row
    return out


def png(w, h, depth, ctype, rows, before=b"", after=b"", plte=None, trns=None,
        interlace=0, filters=(0,)):
    """rows: packed sample rows (no filter byte).  interlace=1 expects rows of
    the full image and does the Adam7 split itself (filter 0)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    bpp = max(1, channels * depth // 8)
    if interlace:
        bits = channels * depth
        def sample(r, x):
            if bits >= 8:
                n = bits // 8
                return rows[r][x * n:(x + 1) * n]
            byte = rows[r][x * bits // 8]
            shift = 8 - bits - (x * bits) % 8
            return (byte >> shift) & ((1 << bits) - 1)
        raw = b""
        for (x0, y0, dx, dy) in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                                 (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            xs = list(range(x0, w, dx))
            if not xs:
                continue
            for r in range(y0, h, dy):
                if bits >= 8:
                    line = b"".join(sample(r, x) for x in xs)
                else:
                    acc, nb, line = 0, 0, bytearray()
                    for x in xs:
                        acc = (acc << bits) | sample(r, x)
                        nb += bits
                        if nb == 8:
                            line.append(acc)
                            acc, nb = 0, 0
                    if nb:
                        line.append(acc << (8 - nb))
                    line = bytes(line)
                raw += b"\0" + line
    else:
        raw = b"".join(png_filter_rows(rows, bpp, filters))
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    out += before
    if plte is not None:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    comp = zlib.compress(raw, 9)
    half = len(comp) // 2                                   # two IDAT chunks
    out += png_chunk(b"IDAT", comp[:half]) + png_chunk(b"IDAT", comp[half:])
    return out + after + png_chunk(b"IEND", b"")


def pack_bits(vals, bits):
    acc, nb, out = 0, 0, bytearray()
    for v in vals:
        acc = (acc << bits) | int(v)
        nb += bits
        if nb == 8:
            out.append(acc)
            acc, nb = 0, 0
    if nb:
        out.append(acc << (8 - nb))
    return bytes(out)


def lzw(idx, mcs):
    clear, end = 1 << mcs, (1 << mcs) + 1

    def reset():
        return {bytes([i]): i for i in range(clear)}, end + 1, mcs + 1
    table, nxt, size = reset()
    codes = [(clear, size)]
    w = b""
    for k in idx:
        wk = w + bytes([k])
        if wk in table:
            w = wk
            continue
        codes.append((table[w], size))
        if nxt < 4096:
            table[wk] = nxt
            nxt += 1
            if nxt - 1 == (1 << size) and size < 12:
                size += 1
        else:
            codes.append((clear, size))
            table, nxt, size = reset()
        w = bytes([k])
    if w:
        codes.append((table[w], size))
    codes.append((end, size))
    acc, nb, out = 0, 0, bytearray()
    for c, s in codes:
        acc |= c << nb
        nb += s
        while nb >= 8:
            out.append(acc & 255)
            acc >>= 8
            nb -= 8
    if nb:
        out.append(acc & 255)
    return bytes(out)


def sub_blocks(b):
    out = bytearray()
    for i in range(0, len(b), 255):
        out.append(len(b[i:i + 255]))
        out += b[i:i + 255]
    return bytes(out) + b"\0"


def gif(sw, sh, frames, gpal=None, extra=b""):
    flags = 0
    if gpal is not None:
        bits = max(1, (len(gpal) // 3 - 1).bit_length())
        flags = 0x80 | (bits - 1)
        gpal = gpal.ljust(3 << bits, b"\0")
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, flags, 0, 0) + (gpal or b"") + extra
    for f in frames:
        if f.get("trans") is not None:
            out += b"!\xf9\x04" + bytes([1, 10, 0, f["trans"]]) + b"\0"
        lf, lp = 0, b""
        if f.get("lpal") is not None:
            bits = max(1, (len(f["lpal"]) // 3 - 1).bit_length())
            lf = 0x80 | (bits - 1)
            lp = f["lpal"].ljust(3 << bits, b"\0")
        if f.get("interlace"):
            lf |= 0x40
        out += b"," + struct.pack("<HHHHB", f["x"], f["y"], f["w"], f["h"], lf) + lp
        idx = list(np.asarray(f["idx"]).ravel())
        if f.get("interlace"):
            rows = [idx[r * f["w"]:(r + 1) * f["w"]] for r in range(f["h"])]
            order = (list(range(0, f["h"], 8)) + list(range(4, f["h"], 8))
                     + list(range(2, f["h"], 4)) + list(range(1, f["h"], 2)))
            idx = [p for r in order for p in rows[r]]
        data = f.get("data") or lzw(idx, f["mcs"])
        out += bytes([f["mcs"]]) + sub_blocks(data)
    return out + b";"


def bmp(w, h, bits, rows, comp=0, masks=None, pal=b"", hdr=40, colors=0, top_down=False,
        raw=None, pad_entry=4):
    """rows: packed rows, top row first (stored bottom-up unless top_down)."""
    if raw is None:
        stride = ((w * bits + 31) >> 3) & ~3
        order = rows if top_down else rows[::-1]
        raw = b"".join(r.ljust(stride, b"\0") for r in order)
    extra = b""
    if hdr == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        hh = (2 ** 32 - h) if top_down else h
        info = struct.pack("<IIIHHIIiiII", hdr, w, hh, 1, bits, comp, len(raw), 2835, 2835, colors, 0)
        if hdr > 40:
            m = list(masks or []) + [0] * (4 - len(masks or []))
            info += struct.pack("<4I", *m) + b"\0" * (hdr - 56)
        elif masks:
            extra = b"".join(struct.pack("<I", m) for m in masks)
    off = 14 + len(info) + len(extra) + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(raw), 0, 0, off) + info + extra + pal + raw


def tiff_orientation(value, endian="II", typ=3, count=1):
    e = "<" if endian == "II" else ">"
    if typ == 3:
        payload = struct.pack(e + "H", value).ljust(4, b"\0")
    elif typ == 4:
        payload = struct.pack(e + "I", value)
    else:
        payload = bytes([value]).ljust(4, b"\0")
    head = endian.encode() + struct.pack(e + "H", 42) + struct.pack(e + "I", 8)
    # two entries: ImageDescription (ASCII, out of line) then Orientation
    desc = b"glm test\0"
    ifd_len = 2 + 2 * 12 + 4
    ifd = struct.pack(e + "H", 2)
    ifd += struct.pack(e + "HHII", 0x010e, 2, len(desc), 8 + ifd_len)
    ifd += struct.pack(e + "HHI", 0x0112, typ, count) + payload
    ifd += struct.pack(e + "I", 0)
    return head + ifd + desc


def xmp_packet(value, style="attr"):
    o = f'tiff:Orientation="{value}"' if style == "attr" else f"<tiff:Orientation>{value}</tiff:Orientation>"
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" ' + (o if style == "attr" else "") + ">"
            + (o if style != "attr" else "") + "</rdf:Description></rdf:RDF></x:xmpmeta>"
            '<?xpacket end="w"?>').encode()


def jpeg_with_app1(jpeg, segments):
    """Inserts APP1 segments right after SOI."""
    out = jpeg[:2]
    for s in segments:
        out += b"\xff\xe1" + struct.pack(">H", len(s) + 2) + s
    return out + jpeg[2:]


# ---------------------------------------------------------------- recording

def reference(data):
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def add_image(name, ext, data, note):
    path = os.path.join(OUT, f"{name}.{ext}")
    with open(path, "wb") as f:
        f.write(data)
    entry = {"name": name, "file": f"{name}.{ext}", "kind": "image", "note": note}
    try:
        rgb = reference(data)
    except Exception as e:                       # PIL refuses it: so must we
        entry["error"] = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", f"{type(e).__name__}: {e}")
        files.append(entry)
        print(f"  {name}: PIL refuses ({entry['error']})")
        return
    arr = np.asarray(rgb)
    entry.update(width=rgb.size[0], height=rgb.size[1],
                 md5=hashlib.md5(arr.tobytes()).hexdigest(), expected=f"expected/{name}.png")
    Image.fromarray(arr).save(os.path.join(OUT, "expected", f"{name}.png"), optimize=True)
    files.append(entry)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def mp4_set_matrix(data, a, b, c, d):
    """Rewrites the video track's tkhd matrix (FFmpeg 5.1's CLI has no way
    to write a display matrix): a, b, c, d in units of 1.0 (16.16)."""
    i = data.index(b"tkhd") - 4
    version = data[i + 8]
    at = i + 8 + 4 + (32 if version == 1 else 20) + 8 + 8
    fix = lambda v: struct.pack(">i", int(v * 65536))
    matrix = fix(a) + fix(b) + fix(0) + fix(c) + fix(d) + fix(0) + fix(0) + fix(0) + struct.pack(">i", 1 << 30)
    return data[:at] + matrix + data[at + 36:]


def add_video(name, ext, args, note, src="testsrc2=size=64x48:rate=10:duration=2", edit=None):
    path = os.path.join(OUT, f"{name}.{ext}")
    run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-threads", "1", "-fflags", "+bitexact"]
        + args + [path])
    if edit is not None:
        with open(path, "rb") as f:
            data = edit(f.read())
        with open(path, "wb") as f:
            f.write(data)
    probe = json.loads(run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                            "-show_entries", "stream=width,height,nb_frames,nb_read_packets,"
                            "avg_frame_rate,r_frame_rate,duration:stream_side_data=rotation:"
                            "format=duration", "-of", "json", path]).stdout)
    st = probe["streams"][0]
    w, h = st["width"], st["height"]
    rot = 0
    for sd in st.get("side_data_list", []):
        rot = int(sd.get("rotation", 0))
    if rot % 180:
        w, h = h, w
    total = int(st["nb_frames"]) if st.get("nb_frames", "N/A") not in ("N/A", "0") else int(st["nb_read_packets"])

    def rate(s):
        a, b = s.split("/")
        return int(a) / int(b) if int(b) and int(a) else 0.0
    fps = rate(st["avg_frame_rate"]) or rate(st["r_frame_rate"])
    if st.get("duration", "N/A") != "N/A":
        duration = float(st["duration"])
    else:
        duration = float(probe["format"].get("duration", 0) or 0)
    raw = run(["ffmpeg", "-v", "error", "-i", path, "-fps_mode", "passthrough", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-"]).stdout
    plain = run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    if plain != raw:
        print(f"  {name}: NOTE the plain CLI command (constant-rate output) differs from passthrough")
    size = w * h * 3
    assert len(raw) % size == 0, (name, len(raw), size)
    frames = [raw[i:i + size] for i in range(0, len(raw), size)]
    if len(frames) != total:
        print(f"  {name}: NOTE {len(frames)} decoded frames, container says {total}")
    sample = [i * (total - 1) // (SAMPLE_N - 1) for i in range(SAMPLE_N)]
    strip = np.concatenate([np.frombuffer(frames[i], np.uint8).reshape(h, w, 3) for i in sample], 0)
    Image.fromarray(strip).save(os.path.join(OUT, "expected", f"{name}.png"), optimize=True)
    files.append({"name": name, "file": f"{name}.{ext}", "kind": "video", "note": note,
                  "width": w, "height": h, "total_frames": total, "decoded_frames": len(frames),
                  "fps": fps, "duration": duration,
                  "frame_md5": [hashlib.md5(f).hexdigest() for f in frames],
                  "sample": sample, "expected": f"expected/{name}.png"})


def pil_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


# ---------------------------------------------------------------- the corpus

def make_jpeg():
    base = Image.fromarray(pattern(40, 24, 1))
    add_image("jpeg_420", "jpg", pil_bytes(base, "JPEG", quality=90, subsampling=2), "4:2:0, fancy upsampling")
    add_image("jpeg_422", "jpg", pil_bytes(base, "JPEG", quality=90, subsampling=1), "4:2:2")
    add_image("jpeg_444", "jpg", pil_bytes(base, "JPEG", quality=90, subsampling=0), "4:4:4")
    odd = Image.fromarray(pattern(37, 23, 2))
    add_image("jpeg_odd_420", "jpg", pil_bytes(odd, "JPEG", quality=85, subsampling=2), "odd size, 4:2:0 edges")
    add_image("jpeg_grey", "jpg", pil_bytes(base.convert("L"), "JPEG", quality=90), "1 component -> L -> replicated")
    add_image("jpeg_progressive", "jpg", pil_bytes(base, "JPEG", quality=80, progressive=True), "progressive scans")
    add_image("jpeg_optimized_restart", "jpg", pil_bytes(odd, "JPEG", quality=70, optimize=True), "optimized Huffman tables")
    cmyk = Image.fromarray(np.concatenate([pattern(40, 24, 3), pattern(40, 24, 4)[:, :, :1]], 2), "CMYK")
    add_image("jpeg_cmyk", "jpg", pil_bytes(cmyk, "JPEG", quality=90), "CMYK (Adobe inverted) -> PIL's cmyk2rgb")
    for o in range(1, 9):
        endian = "II" if o % 2 else "MM"
        exif = b"Exif\0\0" + tiff_orientation(o, endian)
        add_image(f"jpeg_exif_o{o}", "jpg", pil_bytes(base, "JPEG", quality=90, exif=exif),
                  f"EXIF orientation {o}, {endian}")
    add_image("jpeg_exif_long_o6", "jpg",
              pil_bytes(base, "JPEG", quality=90, exif=b"Exif\0\0" + tiff_orientation(6, "MM", typ=4)),
              "Orientation stored as LONG: PIL still transposes")
    plain = pil_bytes(base, "JPEG", quality=90)
    add_image("jpeg_exif_byte_xmp", "jpg",
              jpeg_with_app1(plain, [b"Exif\0\0" + tiff_orientation(6, "II", typ=1),
                                     b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(8)]),
              "Orientation as BYTE (PIL: bytes, no transpose) and XMP 8 not consulted")
    add_image("jpeg_xmp_o6", "jpg",
              jpeg_with_app1(plain, [b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(6, "elem")]),
              "no EXIF, XMP <tiff:Orientation>6 -> transposed")
    tiff = tiff_orientation(8, "II")
    add_image("jpeg_exif_split_app1", "jpg",
              jpeg_with_app1(plain, [b"Exif\0\0" + tiff[:20], b"Exif\0\0" + tiff[20:]]),
              "EXIF split over two APP1 segments: PIL concatenates them")
    add_image("jpeg_exif_not_tiff", "jpg",
              jpeg_with_app1(plain, [b"Exif\0\0XX*\0\0\0\0\x08garbage"]),
              "EXIF that is not TIFF: no orientation")
    add_image("jpeg_truncated", "jpg", plain[:len(plain) * 2 // 3], "cut in the scan: PIL refuses")


def make_png():
    rgb = pattern(40, 24, 5)
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(6)
    alpha = rng.integers(0, 256, (h, w, 1)).astype(np.uint8)
    rows = lambda a: [a[r].tobytes() for r in range(a.shape[0])]
    add_image("png_rgb8", "png", png(w, h, 8, 2, rows(rgb), filters=(0, 1, 2, 3, 4)), "RGB 8, all five filters")
    add_image("png_rgba8", "png", png(w, h, 8, 6, rows(np.concatenate([rgb, alpha], 2)), filters=(4, 1)),
              "RGBA: alpha dropped, not composited")
    grey = rgb[:, :, 1]
    for depth in (1, 2, 4):
        g = (grey >> (8 - depth)).astype(np.uint8)
        add_image(f"png_grey{depth}", "png", png(w, h, depth, 0, [pack_bits(r, depth) for r in g]),
                  f"grey {depth} bit: PIL scales by 255/{(1 << depth) - 1}")
    add_image("png_grey8", "png", png(w, h, 8, 0, rows(grey), filters=(2,)), "grey 8")
    g16 = (grey.astype(np.uint16) * 3 + rng.integers(0, 300, grey.shape)).astype(">u2")
    g16[0, :8] = [0, 1, 255, 256, 257, 1000, 32768, 65535]
    add_image("png_grey16", "png", png(w, h, 16, 0, rows(g16)), "grey 16 = I;16: convert('RGB') clips at 255")
    add_image("png_grey16_trns", "png", png(w, h, 16, 0, rows(g16), trns=struct.pack(">H", 300)),
              "grey 16 with tRNS: still I;16, still clipped")
    c16 = (rgb.astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape)).astype(">u2")
    add_image("png_rgb16", "png", png(w, h, 16, 2, rows(c16), filters=(1, 3)), "RGB 16: high bytes")
    a16 = np.concatenate([c16, (alpha.astype(np.uint16) * 250).astype(">u2")], 2)
    add_image("png_rgba16", "png", png(w, h, 16, 6, rows(a16)), "RGBA 16: high bytes, alpha dropped")
    la8 = np.stack([grey, alpha[:, :, 0]], 2)
    add_image("png_la8", "png", png(w, h, 8, 4, rows(la8)), "LA 8: L replicated, alpha dropped")
    la16 = np.stack([g16.astype(np.uint16) * 100, alpha[:, :, 0].astype(np.uint16) * 257], 2).astype(">u2")
    add_image("png_la16", "png", png(w, h, 16, 4, rows(la16)), "LA 16 (PIL: RGBA via LA;16B): high byte")
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        idx = indices(w, h, n, depth)
        add_image(f"png_pal{depth}", "png", png(w, h, depth, 3, [pack_bits(r, depth) for r in idx],
                                                plte=palette(n, depth)), f"palette {depth} bit")
    idx8 = indices(w, h, 16, 9)
    add_image("png_pal8_trns", "png", png(w, h, 8, 3, rows(idx8), plte=palette(16, 9),
                                          trns=bytes(range(0, 160, 10))),
              "palette with per-entry alpha: PIL's convert('RGB') ignores it")
    add_image("png_pal_short", "png", png(w, h, 8, 3, rows(indices(w, h, 12, 10)), plte=palette(5, 10)),
              "indices past the end of a 5-entry PLTE -> (0, 0, 0)")
    odd = pattern(13, 11, 11)
    add_image("png_interlaced_rgb8", "png", png(13, 11, 8, 2, rows(odd), interlace=1), "Adam7, odd size")
    og = (odd[:, :, 0] >> 6).astype(np.uint8)
    add_image("png_interlaced_grey2", "png", png(13, 11, 2, 0, [pack_bits(r, 2) for r in og], interlace=1),
              "Adam7, 2-bit grey")
    add_image("png_pil_saved", "png", pil_bytes(Image.fromarray(rgb), "PNG", optimize=True), "PIL's own encoder")
    add_image("png_exif_o6", "png",
              png(w, h, 8, 2, rows(rgb), before=png_chunk(b"eXIf", tiff_orientation(6, "MM"))),
              "eXIf before IDAT")
    add_image("png_exif_after_idat_o8", "png",
              png(w, h, 8, 2, rows(rgb), after=png_chunk(b"eXIf", tiff_orientation(8, "II"))),
              "eXIf after IDAT: exif_transpose loads the image first, so it counts")
    exif = b"Exif\0\0" + tiff_orientation(3, "II")
    hexed = exif.hex()
    profile = "\nexif\n" + f"{len(exif):8d}" + "\n" + "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n"
    add_image("png_raw_profile_o3", "png",
              png(w, h, 8, 2, rows(rgb), before=png_chunk(b"zTXt", b"Raw profile type exif\0\0"
                                                           + zlib.compress(profile.encode()))),
              "ImageMagick's zTXt 'Raw profile type exif'")
    add_image("png_xmp_o5", "png",
              png(w, h, 8, 2, rows(rgb), before=png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp_packet(5))),
              "iTXt XMP orientation")
    add_image("png_text_exif_o7", "png",
              png(w, h, 8, 2, rows(rgb), before=png_chunk(b"tEXt", b"exif\0" + b"Exif\0\0" + tiff_orientation(7, "II"))),
              "tEXt keyword 'exif': PIL takes its raw bytes as EXIF")
    bad = bytearray(png(w, h, 8, 2, rows(rgb), before=png_chunk(b"tIME", b"\x07\xe8\x01\x02\x03\x04\x05")))
    bad[33 + 12] ^= 1                                 # a byte of tIME's data: its CRC no longer matches
    add_image("png_bad_crc_before_idat", "png", bytes(bad), "CRC error before IDAT: PIL refuses")
    good = png(w, h, 8, 2, rows(rgb))
    add_image("png_truncated", "png", good[:len(good) - 40], "cut inside IDAT: PIL refuses")


def make_gif():
    pil = Image.fromarray(pattern(40, 24, 12)).quantize(64)
    add_image("gif_pil", "gif", pil_bytes(pil, "GIF"), "PIL's encoder, 64-colour palette")
    w, h = 40, 24
    idx = indices(w, h, 16, 13)
    pal = palette(16, 13)
    add_image("gif_global", "gif", gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4)], gpal=pal), "global palette")
    add_image("gif_local", "gif", gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4, lpal=palette(16, 14))],
                                      gpal=pal), "a local palette wins over the global one")
    add_image("gif_transparent", "gif", gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4, trans=3)], gpal=pal),
              "transparent index: PIL keeps its palette colour")
    small = indices(20, 10, 16, 15)
    add_image("gif_offset_trans", "gif",
              gif(w, h, [dict(x=7, y=5, w=20, h=10, idx=small, mcs=4, trans=5)], gpal=pal),
              "first frame smaller than the screen: the rest is the transparent index")
    add_image("gif_offset_notrans", "gif",
              gif(w, h, [dict(x=7, y=5, w=20, h=10, idx=small, mcs=4)], gpal=pal),
              "first frame smaller than the screen: the rest is index 0")
    add_image("gif_grow", "gif", gif(30, 12, [dict(x=15, y=4, w=20, h=10, idx=small, mcs=4)], gpal=pal),
              "first frame past the logical screen: the canvas grows")
    grey = bytes(v for i in range(16) for v in (i, i, i))
    add_image("gif_grey_identity", "gif", gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4)], gpal=grey),
              "identity grey palette: PIL drops it (mode L)")
    add_image("gif_no_palette", "gif", gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4)]),
              "no palette at all: mode L")
    add_image("gif_interlaced", "gif",
              gif(17, 13, [dict(x=0, y=0, w=17, h=13, idx=indices(17, 13, 16, 16), mcs=4, interlace=1)], gpal=pal),
              "interlaced, 13 rows")
    second = indices(w, h, 16, 17)
    add_image("gif_animated", "gif",
              gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4),
                         dict(x=0, y=0, w=w, h=h, idx=second, mcs=4)], gpal=pal,
                  extra=b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00!\xfe\x05hello\x00"),
              "two frames, NETSCAPE loop and comment extensions: frame 0 only")
    add_image("gif_short_palette", "gif",
              gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=indices(w, h, 8, 18), mcs=3)], gpal=palette(3, 18)),
              "indices past the 4-entry palette -> (0, 0, 0)")
    big = indices(96, 64, 256, 19)
    big = np.where(np.random.default_rng(20).random(big.shape) < 0.5,
                   np.random.default_rng(21).integers(0, 256, big.shape), big).astype(np.uint8)
    add_image("gif_table_full", "gif", gif(96, 64, [dict(x=0, y=0, w=96, h=64, idx=big, mcs=8)],
                                           gpal=palette(256, 19)),
              "8-bit codes, enough noise to fill the 4096-entry table and clear")
    add_image("gif_mcs2", "gif", gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=indices(w, h, 4, 22), mcs=2)],
                                     gpal=palette(4, 22)), "2-bit minimum code size")
    full = list(np.asarray(idx).ravel())
    early = lzw(full[:len(full) // 2], 4)
    add_image("gif_end_code_early", "gif",
              gif(w, h, [dict(x=0, y=0, w=w, h=h, idx=idx, mcs=4, data=early)], gpal=pal),
              "end code at half the image: PIL refuses (truncated)")


def make_webp():
    rgb = Image.fromarray(pattern(40, 24, 23))
    rgba = Image.fromarray(np.concatenate([pattern(40, 24, 23), indices(40, 24, 256, 24)[:, :, None]], 2), "RGBA")
    add_image("webp_lossy", "webp", pil_bytes(rgb, "WEBP", quality=80), "lossy VP8")
    add_image("webp_lossy_alpha", "webp", pil_bytes(rgba, "WEBP", quality=80, exact=True), "lossy with ALPH: alpha dropped")
    add_image("webp_lossless", "webp", pil_bytes(rgb, "WEBP", lossless=True), "VP8L")
    add_image("webp_lossless_alpha", "webp", pil_bytes(rgba, "WEBP", lossless=True, exact=True), "VP8L with alpha")
    odd = Image.fromarray(pattern(37, 23, 25))
    add_image("webp_odd", "webp", pil_bytes(odd, "WEBP", quality=70), "odd size: chroma edges")
    second = Image.fromarray(pattern(40, 24, 26)[::-1].copy())
    add_image("webp_animated", "webp", pil_bytes(rgb, "WEBP", save_all=True, append_images=[second], quality=80),
              "animated: frame 0")
    add_image("webp_exif_o6", "webp", pil_bytes(rgb, "WEBP", quality=80, exif=b"Exif\0\0" + tiff_orientation(6, "II")),
              "EXIF chunk orientation 6")


def make_bmp():
    rgb = pattern(40, 24, 27)
    h, w = rgb.shape[:2]
    im = Image.fromarray(rgb)
    add_image("bmp_24", "bmp", pil_bytes(im, "BMP"), "PIL's encoder, 24 bit")
    add_image("bmp_8pal", "bmp", pil_bytes(im.quantize(200), "BMP"), "8-bit palette (PIL's encoder)")
    add_image("bmp_grey", "bmp", pil_bytes(im.convert("L"), "BMP"), "8-bit grey ramp palette: mode L")
    add_image("bmp_1bit", "bmp", pil_bytes(im.convert("1"), "BMP"), "1 bit black/white: mode 1")
    bgr = rgb[:, :, ::-1]
    add_image("bmp_32", "bmp", bmp(w, h, 32, [np.concatenate([bgr, indices(w, h, 256, 28)[:, :, None]], 2)[r].tobytes()
                                             for r in range(h)]),
              "32 bit BI_RGB: the 4th byte ignored")
    rgba_rows = [np.concatenate([rgb, indices(w, h, 256, 29)[:, :, None]], 2)[r].tobytes() for r in range(h)]
    add_image("bmp_32_rgba_v5", "bmp", bmp(w, h, 32, rgba_rows, comp=3, hdr=124,
                                           masks=[0xff, 0xff00, 0xff0000, 0xff000000]),
              "BITMAPV5HEADER with RGBA bitfields: alpha dropped")
    xbgr = [np.concatenate([indices(w, h, 256, 30)[:, :, None], bgr], 2)[r].tobytes() for r in range(h)]
    add_image("bmp_32_xbgr", "bmp", bmp(w, h, 32, xbgr, comp=3, masks=[0xff000000, 0xff0000, 0xff00]),
              "40-byte header, masks after it: XBGR")
    v555 = (((rgb[:, :, 0].astype(np.uint16) >> 3) << 10) | ((rgb[:, :, 1].astype(np.uint16) >> 3) << 5)
            | (rgb[:, :, 2].astype(np.uint16) >> 3)).astype("<u2")
    add_image("bmp_16_555", "bmp", bmp(w, h, 16, [v555[r].tobytes() for r in range(h)]),
              "16 bit X1R5G5B5: v*255/31")
    v565 = (((rgb[:, :, 0].astype(np.uint16) >> 3) << 11) | ((rgb[:, :, 1].astype(np.uint16) >> 2) << 5)
            | (rgb[:, :, 2].astype(np.uint16) >> 3)).astype("<u2")
    add_image("bmp_16_565", "bmp", bmp(w, h, 16, [v565[r].tobytes() for r in range(h)], comp=3,
                                       masks=[0xf800, 0x7e0, 0x1f]), "16 bit 565 bitfields: v*255/63 for green")
    add_image("bmp_topdown", "bmp", bmp(w, h, 24, [bgr[r].tobytes() for r in range(h)], top_down=True),
              "negative height: top-down rows")
    pal16 = palette(16, 31)
    idx4 = indices(w, h, 16, 31)
    bgrx16 = b"".join(pal16[3 * i:3 * i + 3][::-1] + b"\0" for i in range(16))
    add_image("bmp_4bit", "bmp", bmp(w, h, 4, [pack_bits(r, 4) for r in idx4], pal=bgrx16), "4-bit palette")
    add_image("bmp_os2_24", "bmp", bmp(w, h, 24, [bgr[r].tobytes() for r in range(h)], hdr=12), "OS/2 12-byte header")
    bgr16 = b"".join(pal16[3 * i:3 * i + 3][::-1] for i in range(16))
    add_image("bmp_os2_4bit", "bmp", bmp(w, h, 4, [pack_bits(r, 4) for r in idx4], hdr=12, pal=bgr16),
              "OS/2 header, 3-byte palette entries")
    ramp16 = b"".join(bytes([i, i, i, 0]) for i in range(16))
    add_image("bmp_4bit_grey_ramp", "bmp", bmp(w, h, 4, [pack_bits(r, 4) for r in idx4], pal=ramp16, colors=16),
              "PIL quirk: identity grey palette -> mode L -> the 4-bit rows read as bytes")
    bw = b"\0\0\0\0\xff\xff\xff\0"
    add_image("bmp_8bit_bw", "bmp", bmp(w, h, 8, [r.tobytes() for r in indices(w, h, 2, 32)], pal=bw, colors=2),
              "PIL quirk: black/white palette -> mode 1 -> the 8-bit rows read as bits")
    add_image("bmp_pal_short", "bmp", bmp(w, h, 8, [r.tobytes() for r in indices(w, h, 10, 33)],
                                          pal=bgrx16[:24], colors=6),
              "indices past a 6-entry palette -> (0, 0, 0)")
    # RLE8: runs, an absolute run of odd length (pads to an even offset), a delta
    pal256 = b"".join(palette(256, 34)[3 * i:3 * i + 3][::-1] + b"\0" for i in range(256))
    rle = bytearray()
    for r in range(h):
        if r == 5:
            rle += b"\x00\x02\x03\x01"                 # delta: 3 right, 1 down
            continue
        rle += bytes([7, (r * 11) % 256])              # a run of 7
        rle += b"\x00\x05" + bytes([(r + k) % 256 for k in range(5)]) + b"\0"   # absolute 5 (+pad)
        rle += bytes([w - 12, (r * 3 + 1) % 256])      # fill the row
        rle += b"\x00\x00"                             # end of line
    rle += b"\x00\x01"
    add_image("bmp_rle8", "bmp", bmp(w, h, 8, None, comp=1, pal=pal256, raw=bytes(rle)), "RLE8 with delta")
    rle4 = bytearray()
    for r in range(h):
        rle4 += bytes([9, 0x12 + r % 3])              # run of 9 alternating nibbles
        rle4 += b"\x00\x03" + bytes([0x45, 0x60])     # absolute 3 nibbles (2 bytes, even)
        rle4 += bytes([w - 12, 0xab])
        rle4 += b"\x00\x00"
    rle4 += b"\x00\x01"
    add_image("bmp_rle4", "bmp", bmp(w, h, 4, None, comp=2, pal=bgrx16, raw=bytes(rle4)), "RLE4")
    add_image("bmp_rle8_short", "bmp", bmp(w, h, 8, None, comp=1, pal=pal256, raw=bytes([7, 1, 0, 1])),
              "RLE ends before the image is full: PIL refuses")
    good = pil_bytes(im, "BMP")
    add_image("bmp_truncated", "bmp", good[:len(good) // 2], "pixel data cut: PIL refuses")


def make_video():
    add_video("video_h264", "mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p",
                                    "-g", "5", "-bf", "2"], "H.264 4:2:0 with B-frames, nb_frames in the header")
    add_video("video_vp9", "webm", ["-c:v", "libvpx-vp9", "-b:v", "60k", "-deadline", "realtime", "-cpu-used", "8",
                                    "-pix_fmt", "yuv420p"], "VP9 in WebM: no nb_frames, packets counted")
    add_video("video_bt709", "mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p",
                                     "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"],
              "tagged BT.709: the CLI's scaler uses BT.709 coefficients")
    add_video("video_mjpeg", "avi", ["-c:v", "mjpeg", "-q:v", "20", "-pix_fmt", "yuvj422p"],
              "MJPEG in AVI, full-range 4:2:2", src="testsrc2=size=64x48:rate=10:duration=1")
    add_video("video_444", "mkv", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv444p"],
              "4:4:4 (swscale's generic path)", src="testsrc2=size=62x44:rate=12:duration=1.5")
    add_video("video_odd_vp9", "mkv", ["-c:v", "libvpx-vp9", "-b:v", "60k", "-deadline", "realtime",
                                       "-cpu-used", "8", "-pix_fmt", "yuv420p"],
              "4:2:0 of odd size 63x45 (odd height: swscale's generic path)",
              src="testsrc=size=63x45:rate=8:duration=1.5")
    add_video("video_10bit", "mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
                                     "-pix_fmt", "yuv420p10le"], "10-bit 4:2:0")
    for name, matrix, note in [
            ("video_rot90", (0, 1, -1, 0), "display matrix rotating 90 degrees: the CLI transposes"),
            ("video_rot180", (-1, 0, 0, -1), "display matrix rotating 180 degrees: hflip + vflip"),
            ("video_rot270", (0, -1, 1, 0), "display matrix rotating 270 degrees"),
            ("video_hflip", (-1, 0, 0, 1), "display matrix mirroring left-right")]:
        add_video(name, "mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p"],
                  note + " (autorotate)", edit=lambda d, m=matrix: mp4_set_matrix(d, *m))
    add_video("video_gif", "gif", ["-c:v", "gif"], "animated GIF through FFmpeg as a video",
              src="testsrc2=size=32x24:rate=10:duration=1")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "expected"))
    print("JPEG")
    make_jpeg()
    print("PNG")
    make_png()
    print("GIF")
    make_gif()
    print("WebP")
    make_webp()
    print("BMP")
    make_bmp()
    print("video")
    make_video()
    ffmpeg = run(["ffmpeg", "-version"]).stdout.decode().split("\n")[0]
    ref = {"generator": "t/reference/make_media_fixtures.py", "pillow": PIL.__version__,
           "ffmpeg": ffmpeg, "uniform_sample_n": SAMPLE_N, "files": files}
    with open(os.path.join(OUT, "decode_reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"{len(files)} files, {total} bytes under {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
