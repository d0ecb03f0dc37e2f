/*
 * media_jpeg.c: JPEG through libjpeg-turbo, as PIL decodes it.
 *
 * PIL (JpegDecode.c) runs libjpeg with its defaults (JDCT_ISLOW, fancy
 * upsampling, block smoothing) and asks for L, RGB or CMYK by the number of
 * components (1, 3, 4); we ask for the same, so the pixels are libjpeg's
 * own.  Then, as PIL's convert("RGB"):
 *   - L: replicated into R, G and B;
 *   - CMYK: PIL always reads 4-component JPEG as Adobe-inverted ("CMYK;I",
 *     whatever the APP14 marker says), then converts with
 *     nk = 255 - k, R = nk - nk*c/255 (rounded as MULDIV255); libjpeg turns
 *     YCCK into CMYK first, as it does for PIL.
 * Errors: libjpeg's fatal errors longjmp back here (never exit()); its
 * warnings are ignored as PIL ignores them, except one: PIL's suspending
 * source raises "image file is truncated" when the data ends before the last
 * scanline, so the end-of-data warning (JWRN_JPEG_EOF) before the image is
 * complete is an error here.  The end of the data after the last scanline
 * (a missing EOI) is fine in both.
 * The size is checked after jpeg_read_header, before jpeg_start_decompress
 * allocates anything image-sized; a progressive file may not have more than
 * GLM_JPEG_MAX_SCANS scans (each scan is a pass over the whole image, and a
 * few kilobytes can hold thousands: a decode-time bomb; real encoders write
 * about ten).
 * EXIF/XMP: APP1 segments, as PIL's APP handler: the first "Exif\0\0"
 * segment, later ones appended without their 6-byte header; the last XMP
 * segment ("http://ns.adobe.com/xap/1.0/\0").
 */
#include "media_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#define GLM_JPEG_MAX_SCANS 1000

typedef struct {
    struct jpeg_error_mgr      pub;
    jmp_buf                    jump;
    char                       msg[JMSG_LENGTH_MAX];
    int                        hit_eof;
} glm_jpeg_error;

typedef struct {
    struct jpeg_progress_mgr   pub;
    glm_jpeg_error            *error;
} glm_jpeg_progress;

static void
glm_jpeg_error_exit(j_common_ptr cinfo)
{
    glm_jpeg_error *e = (glm_jpeg_error *) cinfo->err;

    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void
glm_jpeg_emit_message(j_common_ptr cinfo, int level)
{
    glm_jpeg_error *e = (glm_jpeg_error *) cinfo->err;

    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        e->hit_eof = 1;
    }
}

static void
glm_jpeg_output_message(j_common_ptr cinfo)
{
    (void) cinfo;
}

static void
glm_jpeg_progress_monitor(j_common_ptr cinfo)
{
    glm_jpeg_progress *p = (glm_jpeg_progress *) cinfo->progress;
    j_decompress_ptr d = (j_decompress_ptr) cinfo;

    if (d->input_scan_number > GLM_JPEG_MAX_SCANS) {
        snprintf(p->error->msg, sizeof(p->error->msg),
                 "more than %d progressive scans", GLM_JPEG_MAX_SCANS);
        longjmp(p->error->jump, 1);
    }
}

/* PIL's Convert.c cmyk2rgb: MULDIV255(a, b) = (t = a*b + 128, ((t >> 8) + t) >> 8). */
static uint8_t
glm_cmyk_channel(int c, int nk)
{
    int t = c * nk + 128;

    return (uint8_t) (nk - (((t >> 8) + t) >> 8));
}

/* The Exif and XMP payloads PIL would keep, from the saved APP1 markers. */
static uint8_t *
glm_jpeg_metadata(j_decompress_ptr cinfo, size_t *exif_len, const uint8_t **xmp,
    size_t *xmp_len)
{
    static const char xmp_id[] = "http://ns.adobe.com/xap/1.0/";
    jpeg_saved_marker_ptr m;
    uint8_t *exif = NULL, *grown;
    size_t have = 0, add, skip;

    *xmp = NULL;
    *xmp_len = 0;
    for (m = cinfo->marker_list; m != NULL; m = m->next) {
        if (m->marker != JPEG_APP0 + 1) {
            continue;
        }
        if (m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            skip = exif == NULL ? 0 : 6;
            add = m->data_length - skip;
            grown = realloc(exif, have + add + 1);
            if (grown == NULL) {
                break;          /* out of memory: keep what we have */
            }
            exif = grown;
            memcpy(exif + have, m->data + skip, add);
            have += add;
        } else if (m->data_length >= sizeof(xmp_id)
                   && memcmp(m->data, xmp_id, sizeof(xmp_id)) == 0) {
            *xmp = m->data + sizeof(xmp_id);
            *xmp_len = m->data_length - sizeof(xmp_id);
        }
    }
    *exif_len = have;
    return exif;
}

int
glm_jpeg_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, int *orientation, glm_err *err)
{
    struct jpeg_decompress_struct cinfo;
    glm_jpeg_error jerr;
    glm_jpeg_progress progress;
    /* volatile: assigned between setjmp and a longjmp back to it */
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    uint8_t *exif = NULL;
    const uint8_t *xmp;
    size_t exif_len, xmp_len;
    JDIMENSION w, h, x;
    int ncomp;

    memset(&cinfo, 0, sizeof(cinfo));
    memset(&jerr, 0, sizeof(jerr));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = glm_jpeg_error_exit;
    jerr.pub.emit_message = glm_jpeg_emit_message;
    jerr.pub.output_message = glm_jpeg_output_message;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return glm_errf(err, "corrupt JPEG data: %s", jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    progress.pub.progress_monitor = glm_jpeg_progress_monitor;
    progress.error = &jerr;
    cinfo.progress = &progress.pub;
    jpeg_mem_src(&cinfo, data, (unsigned long) len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);
    if (jerr.hit_eof) {
        jpeg_destroy_decompress(&cinfo);
        return glm_errf(err, "truncated JPEG: the data ends inside the header");
    }
    ncomp = cinfo.num_components;
    if (ncomp == 1) {
        cinfo.out_color_space = JCS_GRAYSCALE;
    } else if (ncomp == 3) {
        cinfo.out_color_space = JCS_RGB;
    } else if (ncomp == 4) {
        cinfo.out_color_space = JCS_CMYK;
    } else {
        jpeg_destroy_decompress(&cinfo);
        return glm_errf(err, "not a supported image: JPEG with %d components", ncomp);
    }
    w = cinfo.image_width;
    h = cinfo.image_height;
    if (glm_media_check_size(w, h, lim, err) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    exif = glm_jpeg_metadata(&cinfo, &exif_len, &xmp, &xmp_len);
    *orientation = glm_orientation_from_metadata(exif, exif_len, xmp, xmp_len);
    free(exif);

    rgb = glm_media_alloc_rgb((int) w, (int) h, err);
    row = malloc((size_t) w * 4);
    if (rgb == NULL || row == NULL) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return glm_errf(err, "out of memory for a %ux%u JPEG", (unsigned) w, (unsigned) h);
    }
    jpeg_start_decompress(&cinfo);
    while (cinfo.output_scanline < h) {
        uint8_t *dst = rgb + (size_t) cinfo.output_scanline * w * 3;
        JSAMPROW rows[1];

        rows[0] = row;
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            break;
        }
        for (x = 0; x < w; x++) {
            if (ncomp == 1) {
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
            } else if (ncomp == 3) {
                memcpy(dst + 3 * x, row + 3 * x, 3);
            } else {
                int nk = row[4 * x + 3];    /* inverted: 255 - k */

                dst[3 * x] = glm_cmyk_channel(255 - row[4 * x], nk);
                dst[3 * x + 1] = glm_cmyk_channel(255 - row[4 * x + 1], nk);
                dst[3 * x + 2] = glm_cmyk_channel(255 - row[4 * x + 2], nk);
            }
        }
    }
    if (jerr.hit_eof || cinfo.output_scanline < h) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return glm_errf(err, "truncated JPEG: the data ends before the image is complete");
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->width = (int) w;
    out->height = (int) h;
    out->rgb = rgb;
    return 0;
}
