/*
 * fuzz_media.c: libFuzzer harness for engine/media_*.c.  The first byte
 * picks the entry point (even: glm_image_decode, odd: glm_video_decode with
 * a 4-frame uniform sampler), the rest is the file.  Limits are tight (4 Mi
 * pixels, 16 frames) so a run stays in memory; hitting one is an ordinary
 * error.  Aborts on crashes, sanitizer reports, leaks, multi-line errors and
 * on a success that returns an empty or inconsistent image/video.
 *
 * Only our code is instrumented for coverage (libjpeg, libpng, libwebp and
 * FFmpeg are the system's), which is where our parsing lives: the GIF and
 * BMP readers, the PNG chunk walk, the EXIF/XMP readers, the glue.
 *
 * Build and run: see README.md beside this file (make fuzz-media).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
sample_four(void *ctx, const glm_video_meta *meta, int *idx, int max_idx, glm_err *err)
{
    int n = meta->total_frames < 4 ? meta->total_frames : 4, i;

    (void) ctx;
    if (n > max_idx || n < 1) {
        return glm_errf(err, "no room");
    }
    for (i = 0; i < n; i++) {
        idx[i] = n > 1 ? (int) ((int64_t) i * (meta->total_frames - 1) / (n - 1)) : 0;
    }
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    glm_media_limits lim;
    glm_image im;
    glm_video v;
    glm_err err;
    int i;

    if (size < 1) {
        return 0;
    }
    glm_media_limits_default(&lim);
    lim.max_pixels = 1 << 22;
    lim.max_frames = 16;
    lim.max_video_pixels = 1 << 24;
    err.msg[0] = '\0';
    if ((data[0] & 1) == 0) {
        if (glm_image_decode(data + 1, size - 1, &lim, &im, &err) == 0) {
            if (im.width <= 0 || im.height <= 0 || im.rgb == NULL
                || (int64_t) im.width * im.height > lim.max_pixels) {
                abort();
            }
            glm_image_free(&im);
        } else if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL) {
            abort();
        }
        return 0;
    }
    if (glm_video_decode(data + 1, size - 1, &lim, sample_four, NULL, &v, &err) == 0) {
        if (v.n_frames < 1 || v.n_frames > lim.max_frames || v.width <= 0 || v.height <= 0
            || v.rgb == NULL || v.frame_index == NULL) {
            abort();
        }
        for (i = 0; i < v.n_frames; i++) {
            if (v.frame_index[i] < 0 || v.frame_index[i] >= v.meta.total_frames) {
                abort();
            }
        }
        glm_video_free(&v);
    } else if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL) {
        abort();
    }
    return 0;
}
