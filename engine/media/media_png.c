/*
 * media_png.c: PNG through libpng, converted as PIL converts it.
 *
 * PIL's PngImagePlugin maps (bit depth, colour type) to a mode and
 * convert("RGB") does the rest; checked against Pillow 13:
 *   grey 1 bit      mode "1": 0 -> 0, 1 -> 255
 *   grey 2, 4 bit   mode "L" through L;2/L;4: v*85, v*17
 *   grey 16 bit     mode "I;16"; convert("RGB") CLIPS: min(v, 255) (so a
 *                   16-bit grey photo comes out nearly white: the reference
 *                   does that, so we do too)
 *   RGB/RGBA/LA 16  the high byte of each sample (RGB;16B, RGBA;16B, LA;16B)
 *   RGBA, LA        alpha dropped, never composited
 *   palette         index -> PLTE entry; an index past the end of PLTE gives
 *                   (0, 0, 0); tRNS changes nothing
 * gAMA, cHRM, iCCP and sBIT are ignored (PIL ignores them), and so is the
 * APNG animation: the IDAT image is frame 0 for PIL.
 *
 * Checksums, as PIL: the CRC of every chunk before the first IDAT is checked
 * (PIL raises "broken PNG file"); IDAT CRCs and zlib's Adler-32 are not (PIL
 * never reads them), so libpng is told to ignore both.
 *
 * The chunk walk below reads the IHDR (the size guard runs before libpng
 * allocates a row) and the metadata PIL turns into an orientation:
 *   eXIf, and a tEXt with keyword "exif"  -> info["exif"] (last one wins)
 *   "Raw profile type exif" text          -> hex EXIF (ImageMagick), used
 *                                            when there is no info["exif"]
 *   "XML:com.adobe.xmp" text              -> XMP (last one wins)
 * Chunks after IDAT count too (exif_transpose loads the image first).
 * zTXt/iTXt are inflated up to PIL's 1 MiB (MAX_TEXT_CHUNK); PIL refuses an
 * image with a text chunk over that, or with a zTXt compression method other
 * than 0, and so do we.  libpng itself is told to skip every chunk but the
 * five it needs, so it never inflates text or ICC data.
 */
#include "media_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#define GLM_PNG_MAX_TEXT (1u << 20)     /* PIL's MAX_TEXT_CHUNK (ImageFile.SAFEBLOCK) */

typedef struct {
    const uint8_t *p;
    size_t         len;
} glm_bytes;

typedef struct {
    uint32_t       width, height;
    int            depth, color_type;
    glm_bytes      exif;                /* eXIf or tEXt "exif" */
    glm_bytes      raw_profile;         /* "Raw profile type exif" */
    glm_bytes      xmp;
    uint8_t       *owned[2];            /* inflated raw_profile / xmp */
} glm_png_meta;

typedef struct {
    const uint8_t *p;
    size_t         len, pos;
    char           msg[256];
    jmp_buf        jump;
} glm_png_io;

static void
glm_png_meta_free(glm_png_meta *m)
{
    free(m->owned[0]);
    free(m->owned[1]);
}

/* Inflates a zTXt/iTXt payload as PIL's _safe_zlib_decompress: a truncated
 * stream gives what it has, corrupt data gives nothing (PIL: zlib.error ->
 * empty text), more than 1 MiB is an error. */
/*
 * The single transparent colour PIL keeps in info["transparency"] through
 * convert("RGB") (PngImagePlugin's tRNS handling): a palette whose tRNS is
 * all 0xff but for exactly one 0x00 entry (that entry's colour), a grey
 * image's tRNS value (raw, as PIL stores it), an 8-bit RGB image's tRNS
 * colour.  A tRNS with partial alpha values, and 1-bit and 16-bit images,
 * leave no key here.  The GLM-4V processor then whitens that colour
 * (glm_preprocess_image).
 */
static void
glm_png_color_key(png_structp png, png_infop info, int depth, int color_type,
    png_colorp pal, int npal, glm_image *out)
{
    png_bytep alpha = NULL;
    png_color_16p color = NULL;
    int n = 0, i, zero = -1;

    out->has_key = 0;
    if (!png_get_valid(png, info, PNG_INFO_tRNS)
        || png_get_tRNS(png, info, &alpha, &n, &color) == 0)
    {
        return;
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        for (i = 0; alpha != NULL && i < n; i++) {
            if (alpha[i] == 0x00 && zero < 0) {
                zero = i;
            } else if (alpha[i] != 0xff) {
                return;                 /* per-entry alpha: PIL drops it */
            }
        }
        if (zero < 0) {
            return;
        }
        out->has_key = 1;
        if (zero < npal) {
            out->key_rgb[0] = pal[zero].red;
            out->key_rgb[1] = pal[zero].green;
            out->key_rgb[2] = pal[zero].blue;
        } else {
            memset(out->key_rgb, 0, 3);
        }
    } else if (color_type == PNG_COLOR_TYPE_GRAY && depth > 1 && depth <= 8 && color != NULL
               && color->gray <= 255)
    {
        out->has_key = 1;
        memset(out->key_rgb, (int) color->gray, 3);
    } else if (color_type == PNG_COLOR_TYPE_RGB && depth == 8 && color != NULL) {
        out->has_key = 1;
        out->key_rgb[0] = (uint8_t) color->red;
        out->key_rgb[1] = (uint8_t) color->green;
        out->key_rgb[2] = (uint8_t) color->blue;
    }
}

static int
glm_png_inflate(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len,
    glm_err *err)
{
    z_stream z;
    uint8_t *buf;
    int r;

    *out = NULL;
    *out_len = 0;
    buf = malloc(GLM_PNG_MAX_TEXT + 1);
    if (buf == NULL) {
        return glm_errf(err, "out of memory inflating a PNG text chunk");
    }
    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK) {
        free(buf);
        return glm_errf(err, "out of memory inflating a PNG text chunk");
    }
    z.next_in = (Bytef *) in;
    z.avail_in = in_len > UINT32_MAX ? UINT32_MAX : (uInt) in_len;
    z.next_out = buf;
    z.avail_out = GLM_PNG_MAX_TEXT + 1;
    r = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if (r == Z_DATA_ERROR || r == Z_NEED_DICT || r == Z_MEM_ERROR || r == Z_STREAM_ERROR) {
        free(buf);
        return 0;
    }
    if (z.total_out > GLM_PNG_MAX_TEXT) {
        free(buf);
        return glm_errf(err, "corrupt PNG: a text chunk inflates to more than %u bytes",
                        GLM_PNG_MAX_TEXT);
    }
    *out = buf;
    *out_len = z.total_out;
    return 0;
}

/* Remembers `value` as the metadata `key` names, if it is one PIL uses. */
static int
glm_png_text(glm_png_meta *m, const uint8_t *key, size_t key_len, const uint8_t *value,
    size_t value_len, int compressed, int is_text_chunk, glm_err *err)
{
    glm_bytes *slot;
    int owned_slot;
    uint8_t *buf;
    size_t n;

    if (key_len == 4 && memcmp(key, "exif", 4) == 0 && is_text_chunk) {
        m->exif.p = value;              /* tEXt "exif": PIL keeps the raw bytes */
        m->exif.len = value_len;
        return 0;
    }
    if (key_len == 21 && memcmp(key, "Raw profile type exif", 21) == 0) {
        slot = &m->raw_profile;
        owned_slot = 0;
    } else if (key_len == 17 && memcmp(key, "XML:com.adobe.xmp", 17) == 0) {
        slot = &m->xmp;
        owned_slot = 1;
    } else {
        return 0;
    }
    free(m->owned[owned_slot]);
    m->owned[owned_slot] = NULL;
    if (!compressed) {
        slot->p = value;
        slot->len = value_len;
        return 0;
    }
    if (glm_png_inflate(value, value_len, &buf, &n, err) != 0) {
        return -1;
    }
    m->owned[owned_slot] = buf;
    slot->p = buf;
    slot->len = buf != NULL ? n : 0;
    return 0;
}

/* One tEXt / zTXt / iTXt chunk, split as PIL splits it. */
static int
glm_png_text_chunk(glm_png_meta *m, const char *type, const uint8_t *d, size_t n,
    glm_err *err)
{
    const uint8_t *nul = memchr(d, 0, n), *v, *lang_end, *tk_end;
    size_t key_len = nul != NULL ? (size_t) (nul - d) : n, rest;
    int method;

    if (key_len == 0) {
        return 0;
    }
    v = nul != NULL ? nul + 1 : d + n;
    rest = (size_t) (d + n - v);
    if (strcmp(type, "tEXt") == 0) {
        return glm_png_text(m, d, key_len, v, rest, 0, 1, err);
    }
    if (strcmp(type, "zTXt") == 0) {
        method = rest > 0 ? v[0] : 0;
        if (method != 0) {
            return glm_errf(err, "corrupt PNG: unknown compression method %d in a zTXt chunk",
                            method);
        }
        return glm_png_text(m, d, key_len, rest > 0 ? v + 1 : v, rest > 0 ? rest - 1 : 0, 1,
                            0, err);
    }
    /* iTXt: keyword \0 flag method language \0 translated keyword \0 text */
    if (nul == NULL || rest < 2) {
        return 0;
    }
    lang_end = memchr(v + 2, 0, rest - 2);
    if (lang_end == NULL) {
        return 0;
    }
    tk_end = memchr(lang_end + 1, 0, (size_t) (d + n - lang_end - 1));
    if (tk_end == NULL) {
        return 0;
    }
    if (v[0] != 0 && v[1] != 0) {
        return 0;                       /* unknown compression: PIL skips it */
    }
    return glm_png_text(m, d, key_len, tk_end + 1, (size_t) (d + n - tk_end - 1), v[0] != 0,
                        0, err);
}

static int
glm_png_is_name(const char *type)
{
    int i;

    for (i = 0; i < 4; i++) {
        if (!((type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z'))) {
            return 0;
        }
    }
    return 1;
}

static int
glm_png_walk(const uint8_t *data, size_t len, glm_png_meta *m, glm_err *err)
{
    size_t pos = 8, n;
    int seen_idat = 0;
    char type[5];

    if (len < 8 + 8 + 13 || memcmp(data + 12, "IHDR", 4) != 0 || glm_rd_be32(data + 8) < 13) {
        return glm_errf(err, "corrupt PNG: the first chunk is not a 13-byte IHDR");
    }
    m->width = glm_rd_be32(data + 16);
    m->height = glm_rd_be32(data + 20);
    m->depth = data[24];
    m->color_type = data[25];
    while (len - pos >= 8) {
        n = glm_rd_be32(data + pos);
        memcpy(type, data + pos + 4, 4);
        type[4] = '\0';
        if (n > len - pos - 8) {
            break;                      /* truncated: libpng reports it if it matters */
        }
        if (!seen_idat && strcmp(type, "IDAT") != 0) {
            if (len - pos - 8 - n < 4) {
                break;
            }
            if (crc32(crc32(0, data + pos + 4, 4), data + pos + 8, (uInt) n)
                != glm_rd_be32(data + pos + 8 + n)) {
                return glm_errf(err, "corrupt PNG: bad CRC in the chunk at byte %zu (%s)", pos,
                                glm_png_is_name(type) ? type : "not a chunk name");
            }
        }
        if (strcmp(type, "IDAT") == 0) {
            seen_idat = 1;
        } else if (strcmp(type, "IEND") == 0) {
            break;
        } else if (strcmp(type, "eXIf") == 0) {
            m->exif.p = data + pos + 8;
            m->exif.len = n;
        } else if (strcmp(type, "tEXt") == 0 || strcmp(type, "zTXt") == 0
                   || strcmp(type, "iTXt") == 0) {
            if (glm_png_text_chunk(m, type, data + pos + 8, n, err) != 0) {
                return -1;
            }
        }
        if (len - pos - 8 - n < 4) {
            break;
        }
        pos += 8 + n + 4;
    }
    return 0;
}

static int
glm_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Image.getexif's reading of ImageMagick's "Raw profile type exif":
 * bytes.fromhex of everything after the third newline; NULL if that is not
 * hex (PIL raises; we just take no orientation from it). */
static uint8_t *
glm_png_raw_profile(const glm_bytes *b, size_t *out_len)
{
    size_t i = 0, lines = 0, n = 0;
    uint8_t *out;
    int hi, lo;

    while (i < b->len && lines < 3) {
        if (b->p[i++] == '\n') {
            lines++;
        }
    }
    out = malloc(b->len / 2 + 1);
    if (out == NULL) {
        return NULL;
    }
    while (i < b->len) {
        if (b->p[i] == '\n' || b->p[i] == ' ' || b->p[i] == '\t' || b->p[i] == '\r'
            || b->p[i] == '\v' || b->p[i] == '\f') {
            i++;
            continue;
        }
        hi = glm_hex_digit(b->p[i]);
        lo = i + 1 < b->len ? glm_hex_digit(b->p[i + 1]) : -1;
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[n++] = (uint8_t) (hi << 4 | lo);
        i += 2;
    }
    *out_len = n;
    return out;
}

static int
glm_png_orientation(const glm_png_meta *m)
{
    const glm_bytes *xmp = m->xmp.len > 0 ? &m->xmp : NULL;
    uint8_t *exif;
    size_t n = 0;
    int o;

    if (m->exif.p != NULL) {
        return glm_orientation_from_metadata(m->exif.p, m->exif.len,
                                             xmp ? xmp->p : NULL, xmp ? xmp->len : 0);
    }
    if (m->raw_profile.p != NULL) {
        exif = glm_png_raw_profile(&m->raw_profile, &n);
        if (exif == NULL) {
            return 1;
        }
        o = glm_orientation_from_metadata(exif, n, xmp ? xmp->p : NULL, xmp ? xmp->len : 0);
        free(exif);
        return o;
    }
    return glm_orientation_from_metadata(NULL, 0, xmp ? xmp->p : NULL, xmp ? xmp->len : 0);
}

static void
glm_png_read(png_structp png, png_bytep out, size_t n)
{
    glm_png_io *io = png_get_io_ptr(png);

    if (io->len - io->pos < n) {
        snprintf(io->msg, sizeof(io->msg), "%s", "truncated PNG: the data ends before the "
                 "image is complete");
        longjmp(io->jump, 1);
    }
    memcpy(out, io->p + io->pos, n);
    io->pos += n;
}

static void
glm_png_error(png_structp png, png_const_charp msg)
{
    glm_png_io *io = png_get_error_ptr(png);

    snprintf(io->msg, sizeof(io->msg), "corrupt PNG data: %s", msg);
    longjmp(io->jump, 1);
}

static void
glm_png_warning(png_structp png, png_const_charp msg)
{
    (void) png;
    (void) msg;
}

/* One decoded row (after png_set_packing: one byte per sample below 8 bits)
 * to RGB, by the table at the top of the file. */
static void
glm_png_row_to_rgb(int depth, int color_type, const uint8_t *src, uint8_t *dst, uint32_t w,
    const png_color *pal, int npal)
{
    uint32_t x;
    int wide = depth == 16;

    for (x = 0; x < w; x++, dst += 3) {
        unsigned v;

        switch (color_type) {
        case PNG_COLOR_TYPE_GRAY:
            if (wide) {
                v = (unsigned) (src[2 * x] << 8 | src[2 * x + 1]);
                v = v > 255 ? 255 : v;
            } else {
                v = src[x];
                v = depth == 1 ? (v ? 255 : 0) : depth == 2 ? v * 85 : depth == 4 ? v * 17 : v;
            }
            dst[0] = dst[1] = dst[2] = (uint8_t) v;
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            dst[0] = dst[1] = dst[2] = wide ? src[4 * x] : src[2 * x];
            break;
        case PNG_COLOR_TYPE_RGB:
            if (wide) {
                dst[0] = src[6 * x];
                dst[1] = src[6 * x + 2];
                dst[2] = src[6 * x + 4];
            } else {
                memcpy(dst, src + 3 * x, 3);
            }
            break;
        case PNG_COLOR_TYPE_RGB_ALPHA:
            if (wide) {
                dst[0] = src[8 * x];
                dst[1] = src[8 * x + 2];
                dst[2] = src[8 * x + 4];
            } else {
                memcpy(dst, src + 4 * x, 3);
            }
            break;
        case PNG_COLOR_TYPE_PALETTE:
            if (src[x] < npal) {
                dst[0] = pal[src[x]].red;
                dst[1] = pal[src[x]].green;
                dst[2] = pal[src[x]].blue;
            } else {
                dst[0] = dst[1] = dst[2] = 0;
            }
            break;
        }
    }
}

int
glm_png_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, int *orientation, glm_err *err)
{
    glm_png_meta meta;
    glm_png_io io;
    png_structp png = NULL;
    png_infop info = NULL;
    png_colorp pal = NULL;
    int npal = 0, passes, depth, color_type;
    /* volatile: assigned between setjmp and a longjmp back to it */
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile rows = NULL;
    png_bytep *volatile ptrs = NULL;
    size_t rowbytes;
    uint32_t y, w, h;

    memset(&meta, 0, sizeof(meta));
    if (glm_png_walk(data, len, &meta, err) != 0) {
        glm_png_meta_free(&meta);
        return -1;
    }
    if (meta.width > INT32_MAX || meta.height > INT32_MAX) {
        glm_png_meta_free(&meta);
        return glm_errf(err, "corrupt PNG: IHDR says %ux%u", meta.width, meta.height);
    }
    if (glm_media_check_size(meta.width, meta.height, lim, err) != 0) {
        glm_png_meta_free(&meta);
        return -1;
    }
    *orientation = glm_png_orientation(&meta);
    w = meta.width;
    h = meta.height;

    memset(&io, 0, sizeof(io));
    io.p = data;
    io.len = len;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, glm_png_error, glm_png_warning);
    if (png != NULL) {
        info = png_create_info_struct(png);
    }
    if (png == NULL || info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        glm_png_meta_free(&meta);
        return glm_errf(err, "out of memory for a PNG decoder");
    }
    if (setjmp(io.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rgb);
        free(rows);
        free(ptrs);
        glm_png_meta_free(&meta);
        return glm_errf(err, "%s", io.msg);
    }
    png_set_read_fn(png, &io, glm_png_read);
    png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
    png_set_benign_errors(png, 1);
    png_set_check_for_invalid_index(png, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, info);
    if (png_get_image_width(png, info) != w || png_get_image_height(png, info) != h) {
        snprintf(io.msg, sizeof(io.msg), "corrupt PNG data: the IHDR changed under us");
        longjmp(io.jump, 1);
    }
    depth = png_get_bit_depth(png, info);
    color_type = png_get_color_type(png, info);
    if (color_type == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE(png, info, &pal, &npal)) {
        snprintf(io.msg, sizeof(io.msg), "corrupt PNG data: a palette image without PLTE");
        longjmp(io.jump, 1);
    }
    glm_png_color_key(png, info, depth, color_type, pal, npal, out);
    if (depth < 8) {
        png_set_packing(png);
    }
    passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    rowbytes = png_get_rowbytes(png, info);
    rgb = glm_media_alloc_rgb((int) w, (int) h, err);
    rows = malloc(passes > 1 ? rowbytes * h : rowbytes);
    if (passes > 1 && rows != NULL) {
        ptrs = malloc(sizeof(png_bytep) * h);
    }
    if (rgb == NULL || rows == NULL || (passes > 1 && ptrs == NULL)) {
        snprintf(io.msg, sizeof(io.msg), "out of memory for a %ux%u PNG", w, h);
        longjmp(io.jump, 1);
    }
    if (passes > 1) {
        /* Adam7: every pass touches every row, so keep them all */
        for (y = 0; y < h; y++) {
            ptrs[y] = rows + (size_t) y * rowbytes;
        }
        png_read_image(png, ptrs);
        for (y = 0; y < h; y++) {
            glm_png_row_to_rgb(depth, color_type, rows + (size_t) y * rowbytes,
                               rgb + (size_t) y * w * 3, w, pal, npal);
        }
    } else {
        for (y = 0; y < h; y++) {
            png_read_row(png, rows, NULL);
            glm_png_row_to_rgb(depth, color_type, rows, rgb + (size_t) y * w * 3, w, pal, npal);
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(ptrs);
    glm_png_meta_free(&meta);
    out->width = (int) w;
    out->height = (int) h;
    out->rgb = rgb;
    return 0;
}
