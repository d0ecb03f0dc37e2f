/*
 * media_exif.c: the EXIF/XMP Orientation tag, read as PIL reads it, and the
 * transposition ImageOps.exif_transpose applies for it.
 *
 * The reference is Pillow 13: Image.getexif() loads the EXIF block with
 * Image.Exif.load (TiffImagePlugin.ImageFileDirectory_v2 over IFD0 only),
 * then, when that has no Orientation tag, looks for tiff:Orientation in the
 * XMP packet.  exif_transpose maps the value through a dict {2: ..., 8: ...},
 * so any value that compares equal to one of those integers transposes
 * (SHORT 6, LONG 6, FLOAT 6.0, RATIONAL 12/2) and anything else (BYTE and
 * UNDEFINED come back as bytes, ASCII as str, 0, 1, 9, NaN) leaves the image
 * alone.  The rules below were checked against Pillow 13 with crafted blocks
 * (t/reference/make_media_fixtures.py keeps the interesting ones).
 *
 * PIL's IFD reader, reproduced because its quirks decide which entry wins:
 *   - the header must start with II*\0, MM\0*, MM*\0, II\0* or MM\0+
 *     (II+\0 is BigTIFF, whose 8-byte offset PIL cannot read from an 8-byte
 *     header: it raises, which we treat as "present, no transposition");
 *   - the first entry of a tag that loads wins; an entry is skipped (and a
 *     later duplicate may win) when its type is unknown, its count is 0, or
 *     the out-of-line sizes seen so far add up to more than the block;
 *   - reading stops (keeping what loaded) when an entry or an out-of-line
 *     value runs past the end of the block.
 * Everything is bounds-checked against the block: the offsets are untrusted.
 */
#include "media_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GLM_EXIF_TAG_ORIENTATION 0x0112

typedef struct {
    const uint8_t *p;
    size_t         len;
    int            big_endian;
} glm_tiff;

static uint32_t
glm_tiff_u16(const glm_tiff *t, size_t off)
{
    const uint8_t *p = t->p + off;

    return t->big_endian ? (uint32_t) ((p[0] << 8) | p[1]) : (uint32_t) ((p[1] << 8) | p[0]);
}

static uint32_t
glm_tiff_u32(const glm_tiff *t, size_t off)
{
    return t->big_endian ? glm_rd_be32(t->p + off) : glm_rd_le32(t->p + off);
}

/* TIFF field types PIL can load, with their sizes; 0 for the rest. */
static size_t
glm_tiff_type_size(uint32_t type)
{
    switch (type) {
    case 1: case 2: case 6: case 7:   return 1;   /* BYTE ASCII SBYTE UNDEFINED */
    case 3: case 8:                   return 2;   /* SHORT SSHORT */
    case 4: case 9: case 11: case 13: return 4;   /* LONG SLONG FLOAT IFD */
    case 5: case 10: case 12: case 16: return 8;  /* RATIONAL SRATIONAL DOUBLE LONG8 */
    default:                          return 0;
    }
}

static int
glm_orientation_from_integer(int64_t v)
{
    return (v >= 2 && v <= 8) ? (int) v : 0;
}

static int
glm_orientation_from_double(double v)
{
    if (!isfinite(v) || v < 2.0 || v > 8.0 || v != floor(v)) {
        return 0;
    }
    return (int) v;
}

/* The first value of a loaded Orientation entry, as exif_transpose sees it. */
static int
glm_orientation_value(const glm_tiff *t, uint32_t type, size_t off)
{
    uint64_t u64;
    uint32_t u, d;
    float f;
    double dbl;

    switch (type) {
    case 3:  return glm_orientation_from_integer(glm_tiff_u16(t, off));
    case 4:
    case 13: return glm_orientation_from_integer(glm_tiff_u32(t, off));
    case 6:  return glm_orientation_from_integer((int8_t) t->p[off]);
    case 8:  return glm_orientation_from_integer((int16_t) glm_tiff_u16(t, off));
    case 9:  return glm_orientation_from_integer((int32_t) glm_tiff_u32(t, off));
    case 16:
        u64 = t->big_endian
            ? ((uint64_t) glm_tiff_u32(t, off) << 32) | glm_tiff_u32(t, off + 4)
            : ((uint64_t) glm_tiff_u32(t, off + 4) << 32) | glm_tiff_u32(t, off);
        return u64 <= 8 ? glm_orientation_from_integer((int64_t) u64) : 0;
    case 11:
        u = glm_tiff_u32(t, off);
        memcpy(&f, &u, sizeof(f));
        return glm_orientation_from_double(f);
    case 12:
        u64 = t->big_endian
            ? ((uint64_t) glm_tiff_u32(t, off) << 32) | glm_tiff_u32(t, off + 4)
            : ((uint64_t) glm_tiff_u32(t, off + 4) << 32) | glm_tiff_u32(t, off);
        memcpy(&dbl, &u64, sizeof(dbl));
        return glm_orientation_from_double(dbl);
    case 5:                     /* IFDRational: equal to k when num == k*den */
        u = glm_tiff_u32(t, off);
        d = glm_tiff_u32(t, off + 4);
        if (d == 0 || u % d != 0) {
            return 0;
        }
        return glm_orientation_from_integer(u / d);
    case 10: {
        int64_t sn = (int32_t) glm_tiff_u32(t, off), sd = (int32_t) glm_tiff_u32(t, off + 4);

        if (sd == 0 || sn % sd != 0) {
            return 0;
        }
        return glm_orientation_from_integer(sn / sd);
    }
    default:                    /* BYTE, UNDEFINED (bytes), ASCII (str) */
        return 0;
    }
}

int
glm_exif_orientation(const uint8_t *data, size_t len)
{
    static const char *const prefixes[] = {
        "MM\x00\x2a", "II\x2a\x00", "MM\x2a\x00", "II\x00\x2a", "MM\x00\x2b",
    };
    uint8_t loaded[65536 / 8];
    glm_tiff t;
    size_t i, ifd, count, entry, unit;
    uint64_t size, total = 0;
    uint32_t tag, type, n, off;
    int found = -1, known = 0;

    for (i = 0; i < 2 && len >= 6 && memcmp(data, "Exif\0\0", 6) == 0; i++) {
        data += 6;
        len -= 6;
    }
    if (len == 0) {
        return -1;              /* PIL: an empty block is no EXIF at all */
    }
    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (len >= 8 && memcmp(data, prefixes[i], 4) == 0) {
            known = 1;
        }
    }
    if (!known) {
        return 0;               /* PIL raises (not a TIFF header, or BigTIFF) */
    }
    t.p = data;
    t.len = len;
    t.big_endian = data[0] == 'M';
    ifd = glm_tiff_u32(&t, 4);
    if (ifd > len || len - ifd < 2) {
        return -1;
    }
    count = glm_tiff_u16(&t, ifd);
    memset(loaded, 0, sizeof(loaded));
    for (i = 0; i < count; i++) {
        entry = ifd + 2 + 12 * i;
        if (entry > len || len - entry < 12) {
            break;
        }
        tag = glm_tiff_u16(&t, entry);
        type = glm_tiff_u16(&t, entry + 2);
        n = glm_tiff_u32(&t, entry + 4);
        if (loaded[tag >> 3] & (1u << (tag & 7))) {
            continue;
        }
        unit = glm_tiff_type_size(type);
        if (unit == 0) {
            continue;
        }
        size = (uint64_t) n * unit;
        off = (uint32_t) (entry + 8);
        if (size > 4) {
            off = glm_tiff_u32(&t, entry + 8);
            total += size;
            if (total > len) {
                continue;
            }
            if (off > len || len - off < size) {
                break;
            }
        }
        if (size == 0) {
            continue;
        }
        loaded[tag >> 3] |= (uint8_t) (1u << (tag & 7));
        if (tag == GLM_EXIF_TAG_ORIENTATION) {
            found = glm_orientation_value(&t, type, off);
        }
    }
    return found;
}

int
glm_xmp_orientation(const uint8_t *data, size_t len)
{
    static const char key[] = "tiff:Orientation";
    size_t k = sizeof(key) - 1, i;

    for (i = 0; len >= k && i <= len - k; i++) {
        const uint8_t *p = data + i + k;
        size_t rest = len - i - k;

        if (memcmp(data + i, key, k) != 0) {
            continue;
        }
        if (rest >= 3 && p[0] == '=' && p[1] == '"' && p[2] >= '0' && p[2] <= '9') {
            return p[2] - '0';
        }
        if (rest >= 2 && p[0] == '>' && p[1] >= '0' && p[1] <= '9') {
            return p[1] - '0';
        }
    }
    return -1;
}

int
glm_orientation_from_metadata(const uint8_t *exif, size_t exif_len, const uint8_t *xmp,
    size_t xmp_len)
{
    int o = exif != NULL ? glm_exif_orientation(exif, exif_len) : -1;

    if (o < 0 && xmp != NULL) {
        o = glm_xmp_orientation(xmp, xmp_len);
    }
    return o < 0 ? 1 : o;
}

int
glm_image_apply_orientation(glm_image *im, int orientation, glm_err *err)
{
    int w = im->width, h = im->height, ow, oh, x, y, sx = 0, sy = 0;
    uint8_t *out;

    if (orientation < 2 || orientation > 8) {
        return 0;
    }
    ow = (orientation >= 5) ? h : w;
    oh = (orientation >= 5) ? w : h;
    out = glm_media_alloc_rgb(ow, oh, err);
    if (out == NULL) {
        return -1;
    }
    for (y = 0; y < oh; y++) {
        for (x = 0; x < ow; x++) {
            switch (orientation) {
            case 2: sx = w - 1 - x; sy = y;         break;   /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;   /* ROTATE_180 */
            case 4: sx = x;         sy = h - 1 - y; break;   /* FLIP_TOP_BOTTOM */
            case 5: sx = y;         sy = x;         break;   /* TRANSPOSE */
            case 6: sx = y;         sy = h - 1 - x; break;   /* ROTATE_270 (clockwise 90) */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;   /* TRANSVERSE */
            case 8: sx = w - 1 - y; sy = x;         break;   /* ROTATE_90 (counter-clockwise) */
            }
            memcpy(out + ((size_t) y * ow + x) * 3, im->rgb + ((size_t) sy * w + sx) * 3, 3);
        }
    }
    free(im->rgb);
    im->rgb = out;
    im->width = ow;
    im->height = oh;
    return 0;
}
