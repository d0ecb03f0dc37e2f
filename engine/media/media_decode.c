/*
 * media_decode.c: the image entry point of media.h: limits, format sniffing
 * from the magic bytes (never a name or a MIME type), the shared size guard,
 * and the EXIF transposition that follows every decoder.
 *
 * One decoder per file, each matching what PIL's Image.open(...)
 * .convert("RGB") gives for its format (the rules are in each file's note):
 *   media_jpeg.c  libjpeg-turbo
 *   media_png.c   libpng (+ our own chunk walk for the EXIF/XMP PIL reads)
 *   media_webp.c  libwebp's animation decoder, the one PIL uses
 *   media_gif.c   our own LZW decoder: PIL keeps the transparent index's
 *                 palette colour and fills around the first frame with that
 *                 index; FFmpeg's GIF decoder does neither
 *   media_bmp.c   our own reader: PIL's palette, bitfield and 16-bit rules
 *                 (5-bit channels scaled by 255/31, not bit-replicated as
 *                 swscale does) are narrower and different from FFmpeg's
 *   media_video.c FFmpeg (libavformat/libavcodec/libswscale), videos only
 * After decoding, the orientation the decoder found is applied as
 * ImageOps.exif_transpose does (media_exif.c).
 */
#include "media_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No decoder here handles a side over 2^30; the check keeps w*h*3 exact. */
#define GLM_MEDIA_MAX_SIDE (1 << 30)

void
glm_media_limits_default(glm_media_limits *lim)
{
    lim->max_encoded_bytes = (size_t) 64 << 20;
    lim->max_pixels = (int64_t) 64 << 20;
    lim->max_frames = 1200;
    lim->max_duration = 3600.0;
    lim->max_video_pixels = (int64_t) 1 << 31;
}

int
glm_media_check_size(int64_t width, int64_t height, const glm_media_limits *lim, glm_err *err)
{
    if (width <= 0 || height <= 0) {
        return glm_errf(err, "image has zero size (%lldx%lld)", (long long) width,
                        (long long) height);
    }
    /* both sides are below 2^32 here (every header field is), so the
     * unsigned product is exact */
    if (width > GLM_MEDIA_MAX_SIDE || height > GLM_MEDIA_MAX_SIDE
        || width * height > lim->max_pixels) {
        return glm_errf(err, "image is %lldx%lld = %llu pixels, over the limit of %lld "
                        "(decompression bomb guard)", (long long) width, (long long) height,
                        (unsigned long long) width * (unsigned long long) height,
                        (long long) lim->max_pixels);
    }
    return 0;
}

uint8_t *
glm_media_alloc_rgb(int width, int height, glm_err *err)
{
    uint8_t *p = malloc((size_t) width * (size_t) height * 3);

    if (p == NULL) {
        glm_errf(err, "out of memory for a %dx%d image", width, height);
    }
    return p;
}

void
glm_image_free(glm_image *im)
{
    if (im != NULL) {
        free(im->rgb);
        memset(im, 0, sizeof(*im));
    }
}

typedef enum {
    GLM_FMT_UNKNOWN, GLM_FMT_JPEG, GLM_FMT_PNG, GLM_FMT_GIF, GLM_FMT_WEBP, GLM_FMT_BMP,
} glm_image_format;

/* The same tests PIL's plugins' _accept functions make. */
static glm_image_format
glm_sniff_image(const uint8_t *d, size_t n)
{
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) {
        return GLM_FMT_JPEG;
    }
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) {
        return GLM_FMT_PNG;
    }
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) {
        return GLM_FMT_GIF;
    }
    if (n >= 16 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0
        && (memcmp(d + 12, "VP8 ", 4) == 0 || memcmp(d + 12, "VP8L", 4) == 0
            || memcmp(d + 12, "VP8X", 4) == 0)) {
        return GLM_FMT_WEBP;
    }
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
        return GLM_FMT_BMP;
    }
    return GLM_FMT_UNKNOWN;
}

/* A name for formats people send that we do not decode, for the error. */
static const char *
glm_unsupported_name(const uint8_t *d, size_t n)
{
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) {
        return "TIFF";
    }
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
        if (memcmp(d + 8, "avif", 4) == 0 || memcmp(d + 8, "avis", 4) == 0) {
            return "AVIF";
        }
        if (memcmp(d + 8, "heic", 4) == 0 || memcmp(d + 8, "heix", 4) == 0
            || memcmp(d + 8, "mif1", 4) == 0) {
            return "HEIF";
        }
        return "an MP4/MOV video";
    }
    if (n >= 4 && memcmp(d, "\x1a\x45\xdf\xa3", 4) == 0) {
        return "a Matroska/WebM video";
    }
    if (n >= 4 && memcmp(d, "RIFF", 4) == 0) {
        return "a RIFF file that is not WebP";
    }
    return NULL;
}

int
glm_image_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, glm_err *err)
{
    glm_media_limits def;
    int orientation = 1, r;
    const char *name;

    memset(out, 0, sizeof(*out));
    if (lim == NULL) {
        glm_media_limits_default(&def);
        lim = &def;
    }
    if (len == 0 || data == NULL) {
        return glm_errf(err, "not a supported image: no data");
    }
    if (len > lim->max_encoded_bytes) {
        return glm_errf(err, "image data is %zu bytes, over the limit of %zu", len,
                        lim->max_encoded_bytes);
    }
    switch (glm_sniff_image(data, len)) {
    case GLM_FMT_JPEG: r = glm_jpeg_decode(data, len, lim, out, &orientation, err); break;
    case GLM_FMT_PNG:  r = glm_png_decode(data, len, lim, out, &orientation, err);  break;
    case GLM_FMT_WEBP: r = glm_webp_decode(data, len, lim, out, &orientation, err); break;
    case GLM_FMT_GIF:  r = glm_gif_decode(data, len, lim, out, err);                break;
    case GLM_FMT_BMP:  r = glm_bmp_decode(data, len, lim, out, err);                break;
    default:
        name = glm_unsupported_name(data, len);
        if (name != NULL) {
            return glm_errf(err, "not a supported image: %s (JPEG, PNG, GIF, WebP and BMP "
                            "are)", name);
        }
        /* never the bytes themselves: they may be what nginx fetched from a
         * URL the client cannot read (an internal page), not the client's */
        return glm_errf(err, "not a supported image: unknown format (JPEG, PNG, GIF, WebP "
                        "and BMP are)");
    }
    if (r == 0) {
        r = glm_image_apply_orientation(out, orientation, err);
    }
    if (r != 0) {
        glm_image_free(out);
    }
    return r;
}
