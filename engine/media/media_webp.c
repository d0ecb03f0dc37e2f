/*
 * media_webp.c: WebP through libwebp's animation decoder, the path PIL takes.
 *
 * Pillow 13 opens every WebP (still or animated) with
 * WebPAnimDecoderNew(data, NULL): RGBA output, fancy upsampling, frame 1
 * drawn on a canvas cleared to transparent black.  convert("RGB") drops the
 * alpha, so we keep R, G, B of the same canvas and the pixels are libwebp's
 * own (FFmpeg's WebP decoder converts YUV->RGB differently and, in 5.1,
 * cannot read animated files at all).
 * The canvas size comes from the demuxer (the RIFF header) and is checked
 * before the animation decoder allocates its two canvases.
 * EXIF and XMP: the first "EXIF" and "XMP " chunks, as PIL's get_chunk.
 */
#include "media_internal.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

int
glm_webp_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, int *orientation, glm_err *err)
{
    WebPData wd;
    WebPDemuxer *demux;
    WebPChunkIterator exif, xmp;
    WebPAnimDecoder *dec;
    WebPAnimInfo info;
    int has_exif, has_xmp, timestamp;
    uint32_t w, h;
    uint8_t *canvas, *rgb;
    size_t i, n;

    wd.bytes = data;
    wd.size = len;
    demux = WebPDemux(&wd);
    if (demux == NULL) {
        return glm_errf(err, "corrupt WebP data: the RIFF container does not parse "
                        "(truncated or damaged)");
    }
    w = WebPDemuxGetI(demux, WEBP_FF_CANVAS_WIDTH);
    h = WebPDemuxGetI(demux, WEBP_FF_CANVAS_HEIGHT);
    if (glm_media_check_size(w, h, lim, err) != 0) {
        WebPDemuxDelete(demux);
        return -1;
    }
    has_exif = WebPDemuxGetChunk(demux, "EXIF", 1, &exif);
    has_xmp = WebPDemuxGetChunk(demux, "XMP ", 1, &xmp);
    *orientation = glm_orientation_from_metadata(has_exif ? exif.chunk.bytes : NULL,
                                                 has_exif ? exif.chunk.size : 0,
                                                 has_xmp ? xmp.chunk.bytes : NULL,
                                                 has_xmp ? xmp.chunk.size : 0);
    if (has_exif) {
        WebPDemuxReleaseChunkIterator(&exif);
    }
    if (has_xmp) {
        WebPDemuxReleaseChunkIterator(&xmp);
    }
    WebPDemuxDelete(demux);

    dec = WebPAnimDecoderNew(&wd, NULL);
    if (dec == NULL) {
        return glm_errf(err, "corrupt WebP data: libwebp cannot decode it");
    }
    if (!WebPAnimDecoderGetInfo(dec, &info) || info.canvas_width != w
        || info.canvas_height != h) {
        WebPAnimDecoderDelete(dec);
        return glm_errf(err, "corrupt WebP data: inconsistent canvas size");
    }
    if (!WebPAnimDecoderGetNext(dec, &canvas, &timestamp)) {
        WebPAnimDecoderDelete(dec);
        return glm_errf(err, "corrupt WebP data: the first frame does not decode");
    }
    rgb = glm_media_alloc_rgb((int) w, (int) h, err);
    if (rgb == NULL) {
        WebPAnimDecoderDelete(dec);
        return -1;
    }
    n = (size_t) w * h;
    for (i = 0; i < n; i++) {
        memcpy(rgb + 3 * i, canvas + 4 * i, 3);
    }
    WebPAnimDecoderDelete(dec);
    out->width = (int) w;
    out->height = (int) h;
    out->rgb = rgb;
    return 0;
}
