/*
 * media_bmp.c: Windows/OS2 bitmaps, read by PIL's BmpImagePlugin rules.
 *
 * What Pillow 13 accepts and how it maps pixels (checked with crafted files
 * in t/reference/make_media_fixtures.py):
 *   - info headers of 12 (OS/2, 16-bit sizes, 3-byte palette entries), 40,
 *     52, 56, 64, 108 and 124 bytes; a height whose top byte is 0xFF means
 *     top-down rows (height = 2^32 - field), anything else bottom-up;
 *   - 1, 4, 8 bits: palette of biClrUsed entries (or 2^bits), read right
 *     after the header; more than 256 entries is an error.  A palette that
 *     is all grey ramp (entries (0,0,0),(255,255,255) for 2 colours; entry
 *     i = (i,i,i) otherwise) is dropped and the pixels are read as mode "1"
 *     (one BIT per pixel, whatever the depth) or "L" (one BYTE per pixel,
 *     whatever the depth): PIL really does that, so a 4-bit grey-ramp file
 *     is read as bytes.  Indices past the palette give (0, 0, 0);
 *   - 16 bits: X1R5G5B5 (no bitfields) or the 565/555 bitfields; a 5-bit
 *     channel becomes v*255/31, a 6-bit one v*255/63 (integer division);
 *   - 24 bits BGR; 32 bits BGRX (alpha ignored) or one of PIL's seven
 *     32-bit bitfield layouts (alpha, where there is one, dropped);
 *   - RLE8 and RLE4 by PIL's BmpRleDecoder: end-of-line pads the row, delta
 *     skips with index 0, absolute runs re-align on even FILE offsets, and
 *     the data must fill the image ("not enough image data" otherwise);
 *   - no JPEG/PNG-in-BMP, no other bitfields; pixel data at bfOffBits,
 *     moved past the palette when bfOffBits points at the palette.
 * Everything is bounds-checked against the buffer; the size guard runs
 * before any image-sized allocation.
 */
#include "media_internal.h"

#include <stdlib.h>
#include <string.h>

enum {
    GLM_BMP_RAW = 0, GLM_BMP_RLE8 = 1, GLM_BMP_RLE4 = 2, GLM_BMP_BITFIELDS = 3,
};

/* How one pixel is unpacked (PIL's rawmodes). */
typedef enum {
    GLM_BMP_BIT,        /* mode "1": one bit, 0 or 255 */
    GLM_BMP_GREY,       /* mode "L": one byte */
    GLM_BMP_INDEX,      /* mode "P": 1, 4 or 8-bit index into the palette */
    GLM_BMP_RGB15,      /* BGR;15 */
    GLM_BMP_RGB16,      /* BGR;16 */
    GLM_BMP_BYTES,      /* 24/32 bits: R, G, B at byte offsets */
} glm_bmp_unpack;

typedef struct {
    glm_bmp_unpack unpack;
    int            bits;            /* bits per pixel read by the unpacker */
    int            r, g, b;         /* GLM_BMP_BYTES: byte offsets */
    uint8_t        pal[256][3];
    int            npal;
} glm_bmp_pixels;

/* 32-bit bitfield layouts PIL supports: masks R, G, B, A -> byte offsets. */
static const struct {
    uint32_t m[4];
    int      r, g, b;
} glm_bmp_layouts[] = {
    { { 0xff0000, 0xff00, 0xff, 0 },                   2, 1, 0 },   /* BGRX */
    { { 0xff000000u, 0xff0000, 0xff00, 0 },            3, 2, 1 },   /* XBGR */
    { { 0xff000000u, 0xff00, 0xff, 0 },                3, 1, 0 },   /* BGXR */
    { { 0xff000000u, 0xff0000, 0xff00, 0xff },         3, 2, 1 },   /* ABGR */
    { { 0xff, 0xff00, 0xff0000, 0xff000000u },         0, 1, 2 },   /* RGBA */
    { { 0xff0000, 0xff00, 0xff, 0xff000000u },         2, 1, 0 },   /* BGRA */
    { { 0xff000000u, 0xff00, 0xff, 0xff0000 },         3, 1, 0 },   /* BGAR */
    { { 0, 0, 0, 0 },                                  2, 1, 0 },   /* BGRA */
};

static void
glm_bmp_put(const glm_bmp_pixels *px, int v, uint8_t *dst)
{
    if (px->unpack == GLM_BMP_BIT) {
        dst[0] = dst[1] = dst[2] = v ? 255 : 0;
    } else if (px->unpack == GLM_BMP_GREY) {
        dst[0] = dst[1] = dst[2] = (uint8_t) v;
    } else if (v < px->npal) {
        memcpy(dst, px->pal[v], 3);
    } else {
        dst[0] = dst[1] = dst[2] = 0;
    }
}

/* One stored row to RGB. */
static void
glm_bmp_row(const glm_bmp_pixels *px, const uint8_t *src, int w, uint8_t *dst)
{
    int x, v;

    for (x = 0; x < w; x++, dst += 3) {
        switch (px->unpack) {
        case GLM_BMP_BIT:
            glm_bmp_put(px, (src[x >> 3] >> (7 - (x & 7))) & 1, dst);
            break;
        case GLM_BMP_GREY:
            glm_bmp_put(px, src[x], dst);
            break;
        case GLM_BMP_INDEX:
            v = px->bits == 8 ? src[x]
                : px->bits == 4 ? (src[x >> 1] >> (x & 1 ? 0 : 4)) & 15
                : (src[x >> 3] >> (7 - (x & 7))) & 1;
            glm_bmp_put(px, v, dst);
            break;
        case GLM_BMP_RGB15:
            v = glm_rd_le16(src + 2 * x);
            dst[0] = (uint8_t) (((v >> 10) & 31) * 255 / 31);
            dst[1] = (uint8_t) (((v >> 5) & 31) * 255 / 31);
            dst[2] = (uint8_t) ((v & 31) * 255 / 31);
            break;
        case GLM_BMP_RGB16:
            v = glm_rd_le16(src + 2 * x);
            dst[0] = (uint8_t) (((v >> 11) & 31) * 255 / 31);
            dst[1] = (uint8_t) (((v >> 5) & 63) * 255 / 63);
            dst[2] = (uint8_t) ((v & 31) * 255 / 31);
            break;
        case GLM_BMP_BYTES:
            dst[0] = src[x * px->bits / 8 + px->r];
            dst[1] = src[x * px->bits / 8 + px->g];
            dst[2] = src[x * px->bits / 8 + px->b];
            break;
        }
    }
}

/* PIL's BmpRleDecoder into idx[w*h] (file row order); -1 if the data does
 * not fill the image. */
static int
glm_bmp_rle(const uint8_t *data, size_t len, size_t pos, int rle4, int w, int h,
    uint8_t *idx, glm_err *err)
{
    size_t total = (size_t) w * h, n = 0, count, i, want;
    size_t x = 0;
    int a, b;

    memset(idx, 0, total);
    while (n < total) {
        if (pos >= len || len - pos < 2) {
            break;
        }
        a = data[pos];
        b = data[pos + 1];
        pos += 2;
        if (a != 0) {                               /* encoded run */
            count = (size_t) a;
            if (x + count > (size_t) w) {
                count = x < (size_t) w ? (size_t) w - x : 0;
            }
            for (i = 0; i < count && n < total; i++) {
                idx[n++] = (uint8_t) (rle4 ? ((i & 1) ? (b & 15) : (b >> 4)) : b);
            }
            x += count;
            continue;
        }
        if (b == 0) {                               /* end of line */
            while (n % (size_t) w != 0) {
                idx[n++] = 0;
            }
            x = 0;
        } else if (b == 1) {                        /* end of bitmap */
            break;
        } else if (b == 2) {                        /* delta */
            if (pos >= len || len - pos < 2) {
                break;
            }
            want = data[pos] + (size_t) data[pos + 1] * (size_t) w;
            pos += 2;
            n += want < total - n ? want : total - n;
            x = n % (size_t) w;
        } else {                                    /* absolute run of b pixels */
            count = (size_t) b < total - n ? (size_t) b : total - n;
            want = rle4 ? (count + 1) / 2 : count;
            if (pos >= len) {
                want = 0;
            } else if (want > len - pos) {
                want = len - pos;
            }
            for (i = 0; i < want; i++) {
                if (rle4) {
                    idx[n++] = data[pos + i] >> 4;
                    if (i * 2 + 1 < count && n < total) {
                        idx[n++] = data[pos + i] & 15;
                    }
                } else {
                    idx[n++] = data[pos + i];
                }
            }
            pos += want;
            if (want < (rle4 ? (count + 1) / 2 : count) || n == total) {
                break;
            }
            x += (size_t) b;
            if (pos % 2 != 0) {
                pos++;
            }
        }
    }
    if (n < total) {
        return glm_errf(err, "corrupt BMP: the RLE data ends before the image is complete "
                        "(%zu of %zu pixels)", n, total);
    }
    return 0;
}

int
glm_bmp_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, glm_err *err)
{
    glm_bmp_pixels px;
    const uint8_t *hd, *pal;
    uint64_t offset;
    uint32_t hsize, comp = GLM_BMP_RAW, colors = 0, m[4] = { 0, 0, 0, 0 };
    int64_t w, h;
    int bits, top_down = 0, pad, grey, i, entries;
    size_t pos, stride, need, pal_bytes, y;
    uint8_t *rgb, *idx;

    memset(&px, 0, sizeof(px));
    if (len < 18) {
        return glm_errf(err, "truncated BMP: no header");
    }
    offset = glm_rd_le32(data + 10);
    hsize = glm_rd_le32(data + 14);
    if (hsize != 12 && hsize != 40 && hsize != 52 && hsize != 56 && hsize != 64
        && hsize != 108 && hsize != 124) {
        return glm_errf(err, "not a supported image: BMP info header of %u bytes", hsize);
    }
    if (len - 14 < hsize) {
        return glm_errf(err, "truncated BMP: the info header is cut short");
    }
    hd = data + 18;
    pos = 14 + hsize;
    if (hsize == 12) {
        w = glm_rd_le16(hd);
        h = glm_rd_le16(hd + 2);
        bits = glm_rd_le16(hd + 6);
        pad = 3;
    } else {
        top_down = hd[7] == 0xff;
        w = glm_rd_le32(hd);
        h = top_down ? ((int64_t) 1 << 32) - glm_rd_le32(hd + 4) : glm_rd_le32(hd + 4);
        bits = glm_rd_le16(hd + 10);
        comp = glm_rd_le32(hd + 12);
        colors = glm_rd_le32(hd + 28);
        pad = 4;
        if (comp == GLM_BMP_BITFIELDS) {
            if (hsize >= 52) {
                for (i = 0; i < (hsize >= 56 ? 4 : 3); i++) {
                    m[i] = glm_rd_le32(hd + 36 + 4 * i);
                }
            } else {
                if (len - pos < 12) {
                    return glm_errf(err, "truncated BMP: the bitfield masks are cut short");
                }
                for (i = 0; i < 3; i++) {
                    m[i] = glm_rd_le32(data + pos + 4 * i);
                }
                pos += 12;
            }
        }
    }
    if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32) {
        return glm_errf(err, "not a supported image: BMP with %d bits per pixel", bits);
    }
    if (colors == 0) {
        colors = 1u << (bits > 8 ? 8 : bits);
    }
    if (offset == 14 + hsize && bits <= 8) {
        offset += (uint64_t) pad * colors;
    }
    if (glm_media_check_size(w, h, lim, err) != 0) {
        return -1;
    }
    px.bits = bits;
    if (comp == GLM_BMP_BITFIELDS) {
        if (bits == 32) {
            for (i = 0; i < (int) (sizeof(glm_bmp_layouts) / sizeof(glm_bmp_layouts[0])); i++) {
                if (memcmp(glm_bmp_layouts[i].m, m, sizeof(m)) == 0) {
                    break;
                }
            }
            if (i == (int) (sizeof(glm_bmp_layouts) / sizeof(glm_bmp_layouts[0]))) {
                return glm_errf(err, "not a supported image: BMP bitfields %08x %08x %08x %08x",
                                m[0], m[1], m[2], m[3]);
            }
            px.unpack = GLM_BMP_BYTES;
            px.r = glm_bmp_layouts[i].r;
            px.g = glm_bmp_layouts[i].g;
            px.b = glm_bmp_layouts[i].b;
        } else if (bits == 24 && m[0] == 0xff0000 && m[1] == 0xff00 && m[2] == 0xff) {
            px.unpack = GLM_BMP_BYTES;
            px.r = 2;
            px.g = 1;
            px.b = 0;
        } else if (bits == 16 && m[0] == 0xf800 && m[1] == 0x7e0 && m[2] == 0x1f) {
            px.unpack = GLM_BMP_RGB16;
        } else if (bits == 16 && m[0] == 0x7c00 && m[1] == 0x3e0 && m[2] == 0x1f) {
            px.unpack = GLM_BMP_RGB15;
        } else {
            return glm_errf(err, "not a supported image: BMP bitfields %08x %08x %08x with "
                            "%d bits", m[0], m[1], m[2], bits);
        }
    } else if (comp == GLM_BMP_RAW || comp == GLM_BMP_RLE8 || comp == GLM_BMP_RLE4) {
        if (bits == 16) {
            px.unpack = GLM_BMP_RGB15;
        } else if (bits >= 24) {
            px.unpack = GLM_BMP_BYTES;
            px.r = 2;
            px.g = 1;
            px.b = 0;
        } else {
            px.unpack = GLM_BMP_INDEX;
        }
        if (comp != GLM_BMP_RAW && bits > 8) {
            return glm_errf(err, "not a supported image: RLE BMP with %d bits", bits);
        }
    } else {
        return glm_errf(err, "not a supported image: BMP compression %u", comp);
    }

    if (px.unpack == GLM_BMP_INDEX) {
        if (colors > 65536) {
            return glm_errf(err, "corrupt BMP: %u palette entries", colors);
        }
        pal = data + (pos < len ? pos : len);
        pal_bytes = (size_t) pad * colors;
        if (pal_bytes > len - (size_t) (pal - data)) {
            pal_bytes = len - (size_t) (pal - data);
        }
        pos = (size_t) (pal - data) + pal_bytes;
        entries = (int) (pal_bytes / (size_t) pad);
        grey = 1;
        for (i = 0; i < (int) colors && grey; i++) {
            int want = colors == 2 ? (i ? 255 : 0) : (i & 255);

            if (i >= entries || pal[i * pad] != want || pal[i * pad + 1] != want
                || pal[i * pad + 2] != want) {
                grey = 0;
            }
        }
        if (grey) {
            px.unpack = colors <= 2 ? GLM_BMP_BIT : GLM_BMP_GREY;
            px.bits = colors <= 2 ? 1 : 8;
        } else if (colors > 256) {
            return glm_errf(err, "corrupt BMP: a palette of %u entries (at most 256)", colors);
        } else {
            px.npal = entries;
            for (i = 0; i < entries; i++) {
                px.pal[i][0] = pal[i * pad + 2];
                px.pal[i][1] = pal[i * pad + 1];
                px.pal[i][2] = pal[i * pad];
            }
        }
    }
    if (offset == 0) {
        offset = pos < len ? pos : len;
    }
    if (offset > len) {
        return glm_errf(err, "truncated BMP: the pixel data starts past the end of the file");
    }

    rgb = glm_media_alloc_rgb((int) w, (int) h, err);
    if (rgb == NULL) {
        return -1;
    }
    if (comp == GLM_BMP_RLE8 || comp == GLM_BMP_RLE4) {
        idx = malloc((size_t) w * h);
        if (idx == NULL) {
            free(rgb);
            return glm_errf(err, "out of memory for a %lldx%lld BMP", (long long) w,
                            (long long) h);
        }
        if (glm_bmp_rle(data, len, offset, comp == GLM_BMP_RLE4, (int) w, (int) h, idx,
                        err) != 0) {
            free(idx);
            free(rgb);
            return -1;
        }
        for (y = 0; y < (size_t) h; y++) {
            size_t row = top_down ? y : (size_t) h - 1 - y;
            int x;

            for (x = 0; x < w; x++) {
                glm_bmp_put(&px, idx[y * (size_t) w + x], rgb + (row * (size_t) w + x) * 3);
            }
        }
        free(idx);
    } else {
        stride = (((size_t) w * (size_t) bits + 31) >> 3) & ~(size_t) 3;
        need = ((size_t) w * (size_t) px.bits + 7) / 8;
        if (need > stride) {
            free(rgb);
            return glm_errf(err, "corrupt BMP: a grey palette makes PIL read %zu bytes from "
                            "%zu-byte rows", need, stride);
        }
        if (len - offset < need || (size_t) (h - 1) > (len - offset - need) / stride) {
            free(rgb);
            return glm_errf(err, "truncated BMP: %zu bytes of pixel data for %lld rows of %zu",
                            len - offset, (long long) h, stride);
        }
        for (y = 0; y < (size_t) h; y++) {
            size_t row = top_down ? y : (size_t) h - 1 - y;

            glm_bmp_row(&px, data + offset + y * stride, (int) w, rgb + row * (size_t) w * 3);
        }
    }
    out->width = (int) w;
    out->height = (int) h;
    out->rgb = rgb;
    return 0;
}
