/*
 * media_gif.c: the first frame of a GIF, as PIL's GifImagePlugin gives it.
 *
 * What Pillow 13 does for frame 0 (and so what this does; checked with
 * crafted files in t/reference/make_media_fixtures.py):
 *   - the canvas is the logical screen, grown to hold the first image if
 *     that reaches past it;
 *   - the canvas starts filled with the transparent index of the graphic
 *     control extension when there is one, else with index 0; the image's
 *     pixels are written as they are, transparent ones included;
 *   - convert("RGB") then maps every index through the palette, the
 *     transparent one too: its RGB is the palette's entry, not a background
 *     colour and not black.  An index past the palette's end is (0, 0, 0);
 *   - the palette is the image's local one, else the global one; a palette
 *     that is exactly the identity grey ramp (entry i = (i, i, i)) is
 *     dropped and the image is mode "L" (the index is the grey level: the
 *     same result except for indices past the palette's end), and so is a
 *     file with no palette at all;
 *   - LZW as PIL's GifDecode.c: code sizes 0..12, the first code after a
 *     clear must be a literal, a code past the next free one is an error,
 *     the table stops growing at 4096 entries, zero-length sub-blocks are
 *     skipped; decoding ends as soon as the image is full.  Where PIL runs
 *     out of data or meets the end code first it raises "image file is
 *     truncated"; that is an error here too.
 * Extensions are skipped the way PIL skips them (including its habit of
 * reading one more sub-block list after an empty extension).  No EXIF:
 * PIL reads none from GIF.
 */
#include "media_internal.h"

#include <stdlib.h>
#include <string.h>

#define GLM_GIF_TABLE 4096

typedef struct {
    const uint8_t *p;
    size_t         len, pos;
} glm_gif_reader;

static int
glm_gif_byte(glm_gif_reader *r)
{
    return r->pos < r->len ? r->p[r->pos++] : -1;
}

/* PIL's data(): one sub-block; 0 when its size byte is 0 or missing.  A
 * sub-block cut short by the end of the data is returned short. */
static int
glm_gif_sub_block(glm_gif_reader *r, const uint8_t **block, size_t *n)
{
    int size = glm_gif_byte(r);
    size_t have;

    if (size <= 0) {
        return 0;
    }
    have = r->len - r->pos < (size_t) size ? r->len - r->pos : (size_t) size;
    *block = r->p + r->pos;
    *n = have;
    r->pos += have;
    return 1;
}

static void
glm_gif_skip_sub_blocks(glm_gif_reader *r)
{
    const uint8_t *b;
    size_t n;

    while (glm_gif_sub_block(r, &b, &n)) {
    }
}

/* The palette PIL keeps: NULL for the identity grey ramp it drops. */
static const uint8_t *
glm_gif_palette_needed(const uint8_t *pal, int entries)
{
    int i;

    for (i = 0; i < entries; i++) {
        if (pal[3 * i] != i || pal[3 * i + 1] != i || pal[3 * i + 2] != i) {
            return pal;
        }
    }
    return NULL;
}

typedef struct {
    glm_gif_reader r;
    int            block_left;      /* bytes left in the current sub-block */
    uint32_t       bits;
    int            nbits;
} glm_gif_bits;

/* The next code of `size` bits, or -1 when the data ends. */
static int
glm_gif_code(glm_gif_bits *b, int size)
{
    int c, code;

    while (b->nbits < size) {
        while (b->block_left == 0) {
            c = glm_gif_byte(&b->r);
            if (c < 0) {
                return -1;
            }
            b->block_left = c;
        }
        c = glm_gif_byte(&b->r);
        if (c < 0) {
            return -1;
        }
        b->block_left--;
        b->bits |= (uint32_t) c << b->nbits;
        b->nbits += 8;
    }
    code = (int) (b->bits & ((1u << size) - 1));
    b->bits >>= size;
    b->nbits -= size;
    return code;
}

typedef struct {
    uint8_t *canvas;
    int      cw;                    /* canvas width */
    int      x0, y0, w, h;          /* the image inside the canvas */
    int      x, y, step;
    int      pass;                  /* next interlace pass to start (1..3), 0: none */
    int      done;
} glm_gif_out;

/* One pixel into the image, advancing as PIL's NEWLINE macro does. */
static void
glm_gif_put(glm_gif_out *o, uint8_t v)
{
    o->canvas[(size_t) (o->y0 + o->y) * o->cw + o->x0 + o->x] = v;
    if (++o->x < o->w) {
        return;
    }
    o->x = 0;
    o->y += o->step;
    while (o->y >= o->h) {
        switch (o->pass) {
        case 1: o->y = 4;                break;
        case 2: o->y = 2; o->step = 4;   break;
        case 3: o->y = 1; o->step = 2;   break;
        default: o->done = 1;            return;
        }
        o->pass = o->pass == 3 ? 0 : o->pass + 1;
    }
}

static int
glm_gif_lzw(glm_gif_bits *b, int min_size, glm_gif_out *o, glm_err *err)
{
    uint16_t prefix[GLM_GIF_TABLE];
    uint8_t suffix[GLM_GIF_TABLE], stack[GLM_GIF_TABLE];
    int clear = 1 << min_size, end = clear + 1, size = min_size + 1;
    int next = clear + 2, first = 1, last_code = 0, last_first = 0;
    int code, this_code, sp, i;

    while (!o->done) {
        code = glm_gif_code(b, size);
        if (code < 0) {
            return glm_errf(err, "truncated GIF: the image data ends before the image is "
                            "complete");
        }
        if (code == clear) {
            next = clear + 2;
            size = min_size + 1;
            first = 1;
            continue;
        }
        if (code == end) {
            return glm_errf(err, "truncated GIF: the image data ends (end code) before the "
                            "image is complete");
        }
        if (first) {
            if (code > clear) {
                return glm_errf(err, "corrupt GIF data: LZW code %d right after a clear", code);
            }
            last_code = last_first = code;
            first = 0;
            glm_gif_put(o, (uint8_t) code);
            continue;
        }
        if (code > next) {
            return glm_errf(err, "corrupt GIF data: LZW code %d past the table's end (%d)",
                            code, next);
        }
        this_code = code;
        sp = GLM_GIF_TABLE;
        if (code == next) {
            stack[--sp] = (uint8_t) last_first;
            code = last_code;
        }
        while (code >= clear) {
            if (sp <= 0 || code >= GLM_GIF_TABLE) {
                return glm_errf(err, "corrupt GIF data: LZW code %d is not in the table", code);
            }
            stack[--sp] = suffix[code];
            code = prefix[code];
        }
        last_first = code;
        if (next < GLM_GIF_TABLE) {
            suffix[next] = (uint8_t) code;
            prefix[next] = (uint16_t) last_code;
            if (next == (1 << size) - 1 && size < 12) {
                size++;
            }
            next++;
        }
        last_code = this_code;
        glm_gif_put(o, (uint8_t) code);
        for (i = sp; i < GLM_GIF_TABLE && !o->done; i++) {
            glm_gif_put(o, stack[i]);
        }
    }
    return 0;
}

int
glm_gif_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, glm_err *err)
{
    glm_gif_reader r = { data, len, 0 };
    const uint8_t *global = NULL, *palette = NULL, *block;
    int global_entries = 0, entries = 0, flags, c, label, has, transparency = -1;
    int x0 = 0, y0 = 0, w = 0, h = 0, interlaced = 0, min_size = -1, cw, ch;
    size_t n, i, npix;
    glm_gif_bits bits;
    glm_gif_out o;
    uint8_t *canvas, *rgb;

    if (len < 13) {
        return glm_errf(err, "truncated GIF: no logical screen descriptor");
    }
    cw = glm_rd_le16(data + 6);
    ch = glm_rd_le16(data + 8);
    flags = data[10];
    r.pos = 13;
    if (flags & 0x80) {
        global_entries = 2 << (flags & 7);
        if (len - r.pos < (size_t) global_entries * 3) {
            return glm_errf(err, "truncated GIF: the global palette is cut short");
        }
        global = glm_gif_palette_needed(data + r.pos, global_entries);
        r.pos += (size_t) global_entries * 3;
    }
    for (;;) {
        c = glm_gif_byte(&r);
        if (c < 0 || c == ';') {
            return glm_errf(err, "corrupt GIF: no image in the file");
        }
        if (c == '!') {
            label = glm_gif_byte(&r);
            if (label < 0) {
                return glm_errf(err, "truncated GIF: an extension is cut short");
            }
            has = glm_gif_sub_block(&r, &block, &n);
            if (label == 0xf9 && has) {
                if (n < 1 || ((block[0] & 1) && n < 4) || n < 3) {
                    return glm_errf(err, "corrupt GIF: a short graphic control extension");
                }
                if (block[0] & 1) {
                    transparency = block[3];
                }
            } else if (label == 0xfe) {
                while (has) {
                    has = glm_gif_sub_block(&r, &block, &n);
                }
                continue;
            } else if (label == 0xff && has && n >= 11 && memcmp(block, "NETSCAPE2.0", 11) == 0) {
                glm_gif_sub_block(&r, &block, &n);
            }
            glm_gif_skip_sub_blocks(&r);
        } else if (c == ',') {
            if (len - r.pos < 9) {
                return glm_errf(err, "truncated GIF: the image descriptor is cut short");
            }
            x0 = glm_rd_le16(data + r.pos);
            y0 = glm_rd_le16(data + r.pos + 2);
            w = glm_rd_le16(data + r.pos + 4);
            h = glm_rd_le16(data + r.pos + 6);
            flags = data[r.pos + 8];
            r.pos += 9;
            interlaced = (flags & 0x40) != 0;
            palette = global;
            entries = global_entries;
            if (flags & 0x80) {
                entries = 2 << (flags & 7);
                if (len - r.pos < (size_t) entries * 3) {
                    return glm_errf(err, "truncated GIF: the local palette is cut short");
                }
                palette = glm_gif_palette_needed(data + r.pos, entries);
                r.pos += (size_t) entries * 3;
            }
            min_size = glm_gif_byte(&r);
            break;
        }
    }
    if (min_size < 0) {
        return glm_errf(err, "truncated GIF: the image data is missing");
    }
    if (min_size > 12) {
        return glm_errf(err, "corrupt GIF data: LZW minimum code size %d (at most 12)", min_size);
    }
    if (x0 + w > cw) {
        cw = x0 + w;
    }
    if (y0 + h > ch) {
        ch = y0 + h;
    }
    if (glm_media_check_size(cw, ch, lim, err) != 0) {
        return -1;
    }
    if (w == 0 || h == 0) {
        return glm_errf(err, "corrupt GIF: the first image is %dx%d", w, h);
    }
    npix = (size_t) cw * ch;
    canvas = malloc(npix);
    if (canvas == NULL) {
        return glm_errf(err, "out of memory for a %dx%d GIF", cw, ch);
    }
    memset(canvas, transparency >= 0 ? transparency : 0, npix);
    memset(&bits, 0, sizeof(bits));
    bits.r = r;
    memset(&o, 0, sizeof(o));
    o.canvas = canvas;
    o.cw = cw;
    o.x0 = x0;
    o.y0 = y0;
    o.w = w;
    o.h = h;
    o.step = interlaced ? 8 : 1;
    o.pass = interlaced ? 1 : 0;
    if (glm_gif_lzw(&bits, min_size, &o, err) != 0) {
        free(canvas);
        return -1;
    }
    rgb = glm_media_alloc_rgb(cw, ch, err);
    if (rgb == NULL) {
        free(canvas);
        return -1;
    }
    for (i = 0; i < npix; i++) {
        int v = canvas[i];

        if (palette == NULL) {
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (uint8_t) v;
        } else if (v < entries) {
            memcpy(rgb + 3 * i, palette + 3 * v, 3);
        } else {
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
        }
    }
    free(canvas);
    /* PIL keeps the transparent index's colour in info["transparency"]
     * through convert("RGB"); the processor whitens that colour */
    out->has_key = transparency >= 0;
    if (out->has_key) {
        if (palette == NULL) {
            memset(out->key_rgb, transparency, 3);
        } else if (transparency < entries) {
            memcpy(out->key_rgb, palette + 3 * transparency, 3);
        } else {
            memset(out->key_rgb, 0, 3);
        }
    }
    out->width = cw;
    out->height = ch;
    out->rgb = rgb;
    return 0;
}
