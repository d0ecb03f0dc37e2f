/*
 * media_internal.h: what the media_*.c decoders share.  Only those files
 * include it; everything else sees media.h.
 *
 * Each image decoder fills a glm_image with 8-bit RGB as PIL's
 * Image.open(...).convert("RGB") would, before any EXIF transposition, and
 * reports the orientation PIL's exif_transpose would read (1 when none);
 * glm_image_decode applies it.  Every decoder checks the size through
 * glm_media_check_size before the allocation the size drives.
 */
#ifndef GLM_MEDIA_INTERNAL_H
#define GLM_MEDIA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "media.h"

/* The image size against the limits: a one-line error for a zero size and
 * for a pixel count over lim->max_pixels (the decompression bomb guard). */
int glm_media_check_size(int64_t width, int64_t height, const glm_media_limits *lim,
    glm_err *err);

/* width*height*3 bytes, or NULL with err set. */
uint8_t *glm_media_alloc_rgb(int width, int height, glm_err *err);

int glm_jpeg_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, int *orientation, glm_err *err);
int glm_png_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, int *orientation, glm_err *err);
int glm_webp_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, int *orientation, glm_err *err);
int glm_gif_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, glm_err *err);
int glm_bmp_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, glm_err *err);

/* ---- orientation (media_exif.c) ---- */

/* The Orientation tag (0x0112) of an EXIF block as PIL's Image.Exif reads it:
 * -1 when the tag is absent, 2..8 for a transposition, any other value
 * (0, 1, 9, ...) when the tag is present but asks for none.  `data` is the
 * TIFF structure, optionally behind one or two "Exif\0\0" headers. */
int glm_exif_orientation(const uint8_t *data, size_t len);

/* PIL's fallback when EXIF has no Orientation: the first
 * tiff:Orientation="N" or tiff:Orientation>N in the XMP packet; -1 if none. */
int glm_xmp_orientation(const uint8_t *data, size_t len);

/* The two combined as Image.getexif does: EXIF's tag when present, else
 * XMP's; 1 when neither says anything. */
int glm_orientation_from_metadata(const uint8_t *exif, size_t exif_len, const uint8_t *xmp,
    size_t xmp_len);

/* Transposes im in place as ImageOps.exif_transpose does for orientations
 * 2..8 (others leave it as it is). */
int glm_image_apply_orientation(glm_image *im, int orientation, glm_err *err);

/* ---- small readers ---- */

static inline uint32_t
glm_rd_be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static inline uint32_t
glm_rd_le32(const uint8_t *p)
{
    return ((uint32_t) p[3] << 24) | ((uint32_t) p[2] << 16) | ((uint32_t) p[1] << 8) | p[0];
}

static inline uint16_t
glm_rd_le16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}

#endif
