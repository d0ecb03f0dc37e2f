/*
 * media.h: images and videos from request bytes to RGB frames, and from RGB
 * frames to the GLM-4V processor's pixel values (MODEL.md sections 5-6).
 *
 * Two halves, one header, so the server sees one interface:
 *
 *   media_decode.c      bytes -> glm_image / glm_video (8-bit RGB, row-major,
 *   (+ media_jpeg/png/  3 bytes per pixel, no padding).  JPEG through
 *   webp/gif/bmp/exif/  libjpeg-turbo, PNG through libpng, WebP through
 *   video.c)            libwebp (as PIL), GIF (first frame) and BMP by our
 *                       own readers (FFmpeg's differ from PIL's pixels),
 *                       every video through FFmpeg's libraries.  Converted
 *                       to RGB the way the reference (PIL's Image.open ->
 *                       exif_transpose -> convert("RGB")) does: EXIF
 *                       orientation applied, grey/palette/alpha/16-bit
 *                       mapped as PIL maps them; video frames byte for byte
 *                       as `ffmpeg -pix_fmt rgb24` converts them.
 *   vision_preprocess.c smart_resize, PIL-exact bicubic resampling, rescale
 *                       and normalise, the 2x2-block patch order, grid_thw;
 *                       the GLM-4V video frame sampler.
 *
 * Every limit is checked before the allocation it guards; a refusal is a
 * one-line glm_err naming the limit and the value seen (the server turns it
 * into a 400).  Nothing here keeps global state: any thread may call any
 * function at any time.
 */
#ifndef GLM_MEDIA_H
#define GLM_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* ---- decoding -------------------------------------------------------------- */

typedef struct {
    size_t   max_encoded_bytes;   /* input size, images and videos */
    int64_t  max_pixels;          /* width*height of one decoded image/frame */
    int      max_frames;          /* frames kept from one video */
    double   max_duration;        /* seconds, one video */
    int64_t  max_video_pixels;    /* width*height summed over the kept frames:
                                     the memory one decoded video may hold */
} glm_media_limits;

/* Defaults: 64 MiB encoded, 64 Mi pixels (67108864), 1200 frames, 3600 s,
 * 2^31 pixels of kept video frames (6 GiB of RGB, ~1000 frames of 1080p). */
void glm_media_limits_default(glm_media_limits *lim);

typedef struct {
    int       width, height;
    uint8_t  *rgb;                /* [height][width][3], malloc'd */
    /* The transparent colour PIL leaves in info["transparency"] when
     * convert("RGB") turns an image with a single transparent colour (a P
     * image's transparent index, as in GIF; an L or RGB PNG's tRNS colour)
     * into RGB.  The image processor's convert_to_rgb then composites the
     * image onto white, so every pixel of exactly that colour becomes white
     * (glm_preprocess_image does this).  0 when there is none: the decoder
     * sets it, and images without one need not know it exists. */
    int       has_key;
    uint8_t   key_rgb[3];
} glm_image;

void glm_image_free(glm_image *im);

/* Decodes one image (any supported format, sniffed from the magic bytes,
 * never from a name or MIME type).  0, or -1 with err set: every failure
 * (unsupported, corrupt, truncated, over a limit) is the client's, a 400.
 * lim may be NULL for the defaults. */
int glm_image_decode(const uint8_t *data, size_t len,
    const glm_media_limits *lim, glm_image *out, glm_err *err);

/* What a video's container says, as the reference sampler reads it. */
typedef struct {
    int       total_frames;       /* frames in the stream */
    double    fps;                /* average frame rate */
    double    duration;           /* seconds; 0 when unknown */
} glm_video_meta;

/* Chooses which frame indices (ascending, < total_frames, duplicates allowed
 * only as the last entry) to keep; returns the count written to idx (at most
 * max_idx) or -1 with err set. */
typedef int (*glm_frame_sampler)(void *ctx, const glm_video_meta *meta,
    int *idx, int max_idx, glm_err *err);

typedef struct {
    glm_video_meta meta;
    int        n_frames;          /* frames kept */
    int        width, height;     /* after the container's rotation, which is
                                     applied as the ffmpeg CLI applies it */
    int       *frame_index;       /* [n_frames] index in the stream */
    uint8_t   *rgb;               /* [n_frames][height][width][3] */
} glm_video;

void glm_video_free(glm_video *v);

/* Decodes the frames the sampler picks (a frame listed twice is stored
 * twice).  Only the kept frames are held in memory.  The sampler is called
 * once, with max_idx = total_frames + 1 (room for any valid answer); more
 * than lim->max_frames chosen is refused.  Errors as glm_image_decode. */
int glm_video_decode(const uint8_t *data, size_t len,
    const glm_media_limits *lim, glm_frame_sampler sampler, void *sampler_ctx,
    glm_video *out, glm_err *err);

/* ---- preprocessing (the GLM-4V image and video processors) ----------------- */

typedef struct {
    int64_t  min_pixels;          /* size.shortest_edge */
    int64_t  max_pixels;          /* size.longest_edge */
    int      patch_size;          /* 14 */
    int      temporal_patch_size; /* 2 */
    int      merge_size;          /* 2 */
    float    mean[3], std[3];     /* OPENAI_CLIP_MEAN / _STD */
    double   fps;                 /* video sampling rate, 2 */
    double   max_duration;        /* video, 300 s */
    int      threads;             /* preprocessing work split over this many
                                     threads, the caller's included (<= 1:
                                     the caller's alone); 1 by default */
} glm_vision_proc;

/* GLM-4.5V's defaults for images (min 12544, max 9633792). */
void glm_vision_proc_default_image(glm_vision_proc *p);
/* ... and for videos (min 12544, max 47040000, fps 2, max_duration 300). */
void glm_vision_proc_default_video(glm_vision_proc *p);

/* The processor's smart_resize; -1 with err for an aspect ratio over 200. */
int glm_smart_resize(int num_frames, int height, int width, int factor,
    int temporal_factor, int64_t min_pixels, int64_t max_pixels,
    int *out_h, int *out_w, glm_err *err);

/* PIL's Image.resize(size, Image.BICUBIC) on 8-bit RGB, bit-exact (Pillow
 * 13).  0, or -1 for sizes <= 0 or over 2^24 or no memory. */
int glm_resize_bicubic_rgb(const uint8_t *src, int sw, int sh, uint8_t *dst,
    int dw, int dh);
/* torchvision's resize(..., BICUBIC, antialias=True) on uint8 tensors (the
 * video processor's resize), bit-exact with torch's uint8 kernel: the same
 * filter as PIL's with int16 weights and always the horizontal pass first,
 * so a few levels apart from PIL's output on some pixels. */
int glm_resize_bicubic_rgb_torch(const uint8_t *src, int sw, int sh,
    uint8_t *dst, int dw, int dh);

/* The patches of one image or one video, as the processor returns them. */
typedef struct {
    int       grid_t, grid_h, grid_w;
    int64_t   n_patches;          /* grid_t * grid_h * grid_w */
    int       patch_dim;          /* 3 * temporal_patch_size * patch^2 = 1176 */
    float    *pixel_values;       /* [n_patches][patch_dim], malloc'd */
    /* videos only: the timestamp (integer seconds) of each frame pair */
    int      *pair_seconds;       /* [grid_t] */
} glm_vision_input;

void glm_vision_input_free(glm_vision_input *vi);

/* Image -> pixel_values, image_grid_thw = [1, gh, gw], bit for bit what
 * transformers 5.23's Glm4vImageProcessorPil returns: smart_resize with
 * num_frames = temporal_patch_size, PIL's bicubic, float32(u8 / 255) then
 * (x - mean) / std in float32, the 2x2-block patch order, the temporal
 * copies equal; a key colour (glm_image.has_key) composited on white first.
 * pixel_values holds 4 * patch_dim bytes per patch (24 per resized pixel).
 * 0, or -1 with err (aspect ratio over 200, sizes out of range, memory). */
int glm_preprocess_image(const glm_image *im, const glm_vision_proc *p,
    glm_vision_input *out, glm_err *err);

/* Video frames (already sampled) -> pixel_values_videos, [T/2, gh, gw], as
 * Glm4vVideoProcessor (torchvision backend): one smart_resize for all
 * frames with num_frames = n_frames (so 1 frame is refused, as there), the
 * torch resampler, (float(u8) - 255 mean) / (255 std) in float32, the frame
 * count padded to even with the last frame, consecutive frames paired.
 * pair_seconds[k] = int(frame_index[2k] / meta.fps) (fps 24 when 0), the
 * timestamps processing_glm4v prints; frame_index NULL means 0, 1, 2... */
int glm_preprocess_video(const glm_video *v, const glm_vision_proc *p,
    glm_vision_input *out, glm_err *err);

/* The reference sampler (MODEL.md 6.1, Glm4vVideoProcessor.sample_frames);
 * ctx is a glm_vision_proc * (fps, max_duration); meta.fps must be > 0 and
 * meta.duration 0 means unknown.  At most total_frames + 1 indices.  A
 * fixed frame count (vLLM's --media-io-kwargs num_frames) is a different
 * sampler: glm_sample_uniform with ctx pointing at an int (vLLM's OpenCV
 * loader: every frame when the int is <= 0 or >= total_frames, else
 * numpy.linspace(0, total - 1, n, dtype=int); no padding to even). */
int glm_sample_frames_fps(void *ctx, const glm_video_meta *meta, int *idx,
    int max_idx, glm_err *err);
int glm_sample_uniform(void *ctx, const glm_video_meta *meta, int *idx,
    int max_idx, glm_err *err);

/* LLM placeholder tokens: n_patches / merge_size^2. */
static inline int64_t glm_vision_tokens(const glm_vision_input *vi, int merge)
{
    return vi->n_patches / ((int64_t) merge * merge);
}

#endif
