/*
 * media_video.c: videos through FFmpeg's libraries: probe, ask the sampler
 * which frames to keep, decode once in order keeping only those, convert
 * each to RGB24 byte for byte as the ffmpeg CLI does.
 *
 * The byte reference is `ffmpeg -i F -fps_mode passthrough -f rawvideo
 * -pix_fmt rgb24 -` (FFmpeg 5.1; passthrough so that frame k of the output is
 * the k-th decoded frame: without it the rawvideo muxer's constant-rate mode
 * may duplicate or drop frames of a variable-rate file).  What the CLI does
 * to a decoded frame, and so what this does:
 *   - the format conversion is the scale filter the filtergraph inserts,
 *     with the CLI's default sws flags: "flags=bicubic" (SWS_BICUBIC alone:
 *     no accurate_rnd, no full_chroma_int), same size, no threads needed;
 *   - that filter's in_color_matrix is "auto": the YUV->RGB coefficients
 *     follow the frame's colorspace (BT.709, BT.2020, FCC, SMPTE 240M;
 *     unspecified or anything else is BT.601), and the input range is the
 *     frame's color_range when the frame says (else swscale's default for
 *     the pixel format: full range for yuvj*);
 *   - the CLI's output frame is padded and aligned as libavfilter allocates
 *     it, and swscale picks its SIMD routines partly by alignment; we
 *     convert into an aligned frame too and copy the rows out (writing
 *     straight into the packed buffer gave the same bytes on every fixture,
 *     but nothing promises that);
 *   - autorotate: a display matrix of 90/180/270 degrees (phone videos)
 *     inserts transpose/hflip/vflip before the conversion.  We transpose the
 *     RGB after the conversion instead: identical for the usual 4:2:0 8-bit
 *     frames of even size (swscale's unscaled converter takes one chroma
 *     sample per 2x2 block, which commutes with the transposition), possibly
 *     a rounding apart for other formats.  Other angles are ignored (the CLI
 *     would rotate with interpolation and black corners).
 * Metadata for the sampler: total_frames is the stream's nb_frames, else
 * the packets of the stream counted in a demux-only pass; fps is
 * avg_frame_rate (r_frame_rate when that is unset); duration is the stream's,
 * else the container's, else 0.
 * Safety: the input is demuxed from memory through a custom AVIOContext,
 * only by the demuxers in GLM_VIDEO_FORMATS, and with io_open refused, so a
 * playlist or a reference to another file or URL (HLS, concat, MOV dref)
 * cannot make FFmpeg open anything.  Decoders get max_pixels, so no frame
 * over the limit is ever allocated, even while probing; frames past the last
 * one kept are never decoded; the kept frames' total size is checked before
 * the one allocation that holds them.  FFmpeg's logging is silenced once.
 */
#include "media_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>

#define GLM_VIDEO_FORMATS "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,gif"
#define GLM_VIDEO_IO_BUFFER 65536
/* Frames one stream may have: bounds the packet-counting pass and the
 * sampler's index array (about 9 hours at 30 fps). */
#define GLM_VIDEO_MAX_STREAM_FRAMES (1 << 20)

static pthread_once_t glm_ffmpeg_once = PTHREAD_ONCE_INIT;

static void
glm_ffmpeg_init(void)
{
    av_log_set_level(AV_LOG_QUIET);
}

void
glm_video_free(glm_video *v)
{
    if (v != NULL) {
        free(v->frame_index);
        free(v->rgb);
        memset(v, 0, sizeof(*v));
    }
}

typedef struct {
    const uint8_t *p;
    size_t         len, pos;
} glm_mem_io;

static int
glm_mem_read(void *opaque, uint8_t *buf, int size)
{
    glm_mem_io *io = opaque;
    size_t n = io->len - io->pos;

    if (n == 0) {
        return AVERROR_EOF;
    }
    if (n > (size_t) size) {
        n = (size_t) size;
    }
    memcpy(buf, io->p + io->pos, n);
    io->pos += n;
    return (int) n;
}

static int64_t
glm_mem_seek(void *opaque, int64_t offset, int whence)
{
    glm_mem_io *io = opaque;
    int64_t base;

    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) {
        return (int64_t) io->len;
    }
    base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t) io->pos
           : whence == SEEK_END ? (int64_t) io->len : -1;
    if (base < 0 || offset > INT64_MAX - base || base + offset < 0
        || base + offset > (int64_t) io->len) {
        return AVERROR(EINVAL);
    }
    io->pos = (size_t) (base + offset);
    return (int64_t) io->pos;
}

static int
glm_refuse_io_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
    AVDictionary **options)
{
    (void) s;
    (void) pb;
    (void) url;
    (void) flags;
    (void) options;
    return AVERROR(EPERM);
}

/* One demuxer over the memory buffer. */
typedef struct {
    glm_mem_io       io;
    AVIOContext     *avio;
    AVFormatContext *fc;
} glm_demux;

static void
glm_demux_close(glm_demux *d)
{
    if (d->fc != NULL) {
        avformat_close_input(&d->fc);
    }
    if (d->avio != NULL) {
        av_freep(&d->avio->buffer);
        avio_context_free(&d->avio);
    }
}

static int
glm_demux_open(glm_demux *d, const uint8_t *data, size_t len, glm_err *err)
{
    AVDictionary *opts = NULL;
    uint8_t *buf;
    int r;

    memset(d, 0, sizeof(*d));
    d->io.p = data;
    d->io.len = len;
    buf = av_malloc(GLM_VIDEO_IO_BUFFER);
    if (buf != NULL) {
        d->avio = avio_alloc_context(buf, GLM_VIDEO_IO_BUFFER, 0, &d->io, glm_mem_read, NULL,
                                     glm_mem_seek);
    }
    if (d->avio == NULL) {
        av_free(buf);
        return glm_errf(err, "out of memory for a video demuxer");
    }
    d->fc = avformat_alloc_context();
    if (d->fc == NULL) {
        glm_demux_close(d);
        return glm_errf(err, "out of memory for a video demuxer");
    }
    d->fc->pb = d->avio;
    d->fc->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->fc->io_open = glm_refuse_io_open;
    av_dict_set(&opts, "format_whitelist", GLM_VIDEO_FORMATS, 0);
    r = avformat_open_input(&d->fc, NULL, NULL, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        d->fc = NULL;           /* freed by avformat_open_input */
        glm_demux_close(d);
        return glm_errf(err, "not a supported video: %s (MP4, MOV, WebM, MKV, AVI, FLV, "
                        "MPEG-TS/PS, Ogg, ASF, GIF are)", av_err2str(r));
    }
    return 0;
}

/* Opens, probes, picks the video stream; st_index and the codec set. */
static int
glm_demux_probe(glm_demux *d, const glm_media_limits *lim, int *st_index,
    const AVCodec **codec, glm_err *err)
{
    AVDictionary **opts;
    unsigned i;
    int r, idx;
    AVStream *st;
    char pixels[32];

    opts = calloc(d->fc->nb_streams ? d->fc->nb_streams : 1, sizeof(*opts));
    if (opts == NULL) {
        return glm_errf(err, "out of memory probing a video");
    }
    snprintf(pixels, sizeof(pixels), "%lld", (long long) lim->max_pixels);
    for (i = 0; i < d->fc->nb_streams; i++) {
        av_dict_set(&opts[i], "max_pixels", pixels, 0);
        av_dict_set(&opts[i], "threads", "1", 0);
    }
    r = avformat_find_stream_info(d->fc, opts);
    for (i = 0; i < d->fc->nb_streams; i++) {
        av_dict_free(&opts[i]);
    }
    free(opts);
    if (r < 0) {
        return glm_errf(err, "corrupt video: cannot read the stream parameters (%s)",
                        av_err2str(r));
    }
    idx = av_find_best_stream(d->fc, AVMEDIA_TYPE_VIDEO, -1, -1, codec, 0);
    if (idx < 0) {
        return glm_errf(err, "not a supported video: %s",
                        idx == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video stream"
                        : "no video stream");
    }
    st = d->fc->streams[idx];
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) {
        return glm_errf(err, "not a supported video: its only video stream is a cover "
                        "picture");
    }
    *st_index = idx;
    return 0;
}

static double
glm_video_fps(const AVStream *st)
{
    if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) {
        return av_q2d(st->avg_frame_rate);
    }
    if (st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0) {
        return av_q2d(st->r_frame_rate);
    }
    return 0.0;
}

static double
glm_video_duration(const AVFormatContext *fc, const AVStream *st)
{
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0) {
        return (double) st->duration * av_q2d(st->time_base);
    }
    if (fc->duration != AV_NOPTS_VALUE && fc->duration > 0) {
        return (double) fc->duration / AV_TIME_BASE;
    }
    return 0.0;
}

/* Packets of stream idx, counted without decoding; -1 over the cap. */
static int64_t
glm_count_packets(glm_demux *d, int idx)
{
    AVPacket *pkt = av_packet_alloc();
    int64_t n = 0;

    if (pkt == NULL) {
        return -1;
    }
    while (av_read_frame(d->fc, pkt) >= 0) {
        if (pkt->stream_index == idx && ++n > GLM_VIDEO_MAX_STREAM_FRAMES) {
            av_packet_unref(pkt);
            break;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    return n;
}

/* The CLI's autorotate (ffmpeg_filter.c + cmdutils get_rotation) as an
 * EXIF orientation code for glm_image_apply_orientation; 1 for none. */
static int
glm_video_orientation(const AVStream *st)
{
    const int32_t *m = (const int32_t *) av_stream_get_side_data(st,
                                                                  AV_PKT_DATA_DISPLAYMATRIX,
                                                                  NULL);
    double theta;

    if (m == NULL) {
        return 1;
    }
    theta = -round(av_display_rotation_get(m));
    if (isnan(theta)) {
        return 1;
    }
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1.0) {
        return m[3] > 0 ? 5 : 6;                /* transpose=cclock_flip : clock */
    }
    if (fabs(theta - 180) < 1.0) {
        return (m[0] < 0 && m[4] < 0) ? 3 : m[0] < 0 ? 2 : m[4] < 0 ? 4 : 1;
    }
    if (fabs(theta - 270) < 1.0) {
        return m[3] < 0 ? 7 : 8;                /* transpose=clock_flip : cclock */
    }
    if (fabs(theta) < 1.0 && m[4] < 0) {
        return 4;                               /* vflip */
    }
    return 1;
}

/* vf_scale's parse_yuv_type("auto", colorspace). */
static const int *
glm_yuv_coefficients(enum AVColorSpace cs)
{
    int c = (int) cs;

    if (c < 1 || c > 10 || c == 8) {
        c = AVCOL_SPC_BT470BG;
    }
    return sws_getCoefficients(c);
}

typedef struct {
    struct SwsContext *sws;
    int                w, h, fmt;
    AVFrame           *rgb;             /* aligned, as libavfilter's buffers */
} glm_converter;

static void
glm_converter_free(glm_converter *c)
{
    sws_freeContext(c->sws);
    av_frame_free(&c->rgb);
    memset(c, 0, sizeof(*c));
}

/* frame -> packed RGB24 (dst, w*3 per row), as the CLI's scale filter. */
static int
glm_convert_frame(glm_converter *c, const AVFrame *f, uint8_t *dst, glm_err *err)
{
    const int *inv_table, *table;
    int in_full, out_full, brightness, contrast, saturation, y;

    if (c->sws == NULL || c->w != f->width || c->h != f->height || c->fmt != f->format) {
        glm_converter_free(c);
        c->sws = sws_getContext(f->width, f->height, f->format, f->width, f->height,
                                AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
        c->rgb = av_frame_alloc();
        if (c->sws == NULL || c->rgb == NULL) {
            glm_converter_free(c);
            return glm_errf(err, "not a supported video: no conversion from pixel format %s",
                            av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format)
                            : "?");
        }
        c->rgb->format = AV_PIX_FMT_RGB24;
        c->rgb->width = f->width;
        c->rgb->height = f->height;
        if (av_frame_get_buffer(c->rgb, 0) < 0) {
            glm_converter_free(c);
            return glm_errf(err, "out of memory converting a video frame");
        }
        c->w = f->width;
        c->h = f->height;
        c->fmt = f->format;
    }
    sws_getColorspaceDetails(c->sws, (int **) &inv_table, &in_full, (int **) &table, &out_full,
                             &brightness, &contrast, &saturation);
    inv_table = glm_yuv_coefficients(f->colorspace);
    table = inv_table;
    if (f->color_range != AVCOL_RANGE_UNSPECIFIED) {
        in_full = f->color_range == AVCOL_RANGE_JPEG;
    }
    sws_setColorspaceDetails(c->sws, inv_table, in_full, table, out_full, brightness, contrast,
                             saturation);
    sws_scale(c->sws, (const uint8_t *const *) f->data, f->linesize, 0, f->height,
              c->rgb->data, c->rgb->linesize);
    for (y = 0; y < f->height; y++) {
        memcpy(dst + (size_t) y * f->width * 3, c->rgb->data[0] + (size_t) y * c->rgb->linesize[0],
               (size_t) f->width * 3);
    }
    return 0;
}

/* The sampler's answer, checked: ascending, in range, a repeat only last. */
static int
glm_check_indices(const int *idx, int n, int total, const glm_media_limits *lim, glm_err *err)
{
    int i;

    if (n <= 0) {
        return glm_errf(err, "the frame sampler chose no frames");
    }
    if (n > lim->max_frames) {
        return glm_errf(err, "video has %d frames to keep, over the limit of %d", n,
                        lim->max_frames);
    }
    for (i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= total) {
            return glm_errf(err, "the frame sampler chose frame %d of a %d-frame video", idx[i],
                            total);
        }
        if (i > 0 && (idx[i] < idx[i - 1] || (idx[i] == idx[i - 1] && i != n - 1))) {
            return glm_errf(err, "the frame sampler's frames are not in order (%d after %d)",
                            idx[i], idx[i - 1]);
        }
    }
    return 0;
}

typedef struct {
    glm_video         *v;
    const glm_media_limits *lim;
    glm_converter      conv;
    int                orientation;
    int                next;            /* next position in v->frame_index */
    int64_t            decoded;         /* frames out of the decoder so far */
} glm_keep;

/* Stores frame f wherever the sampler listed its index. */
static int
glm_keep_frame(glm_keep *k, const AVFrame *f, glm_err *err)
{
    glm_video *v = k->v;
    glm_image im;
    size_t size;
    int ow, oh;

    if (k->next >= v->n_frames || v->frame_index[k->next] != k->decoded) {
        return 0;
    }
    ow = (k->orientation >= 5) ? f->height : f->width;
    oh = (k->orientation >= 5) ? f->width : f->height;
    if (v->rgb == NULL) {
        if (f->width <= 0 || f->height <= 0
            || (int64_t) f->width * f->height > k->lim->max_pixels) {
            return glm_errf(err, "video frame %lld is %dx%d, not within 1..%lld pixels",
                            (long long) k->decoded, f->width, f->height,
                            (long long) k->lim->max_pixels);
        }
        if ((int64_t) v->n_frames * f->width * f->height > k->lim->max_video_pixels) {
            return glm_errf(err, "video would keep %d frames of %dx%d = %lld pixels, over the "
                            "limit of %lld", v->n_frames, f->width, f->height,
                            (long long) v->n_frames * f->width * f->height,
                            (long long) k->lim->max_video_pixels);
        }
        v->width = ow;
        v->height = oh;
        v->rgb = malloc((size_t) v->n_frames * f->width * f->height * 3);
        if (v->rgb == NULL) {
            return glm_errf(err, "out of memory for %d video frames of %dx%d", v->n_frames,
                            f->width, f->height);
        }
    } else if (ow != v->width || oh != v->height) {
        return glm_errf(err, "video frame %lld is %dx%d, earlier ones were %dx%d",
                        (long long) k->decoded, ow, oh, v->width, v->height);
    }
    size = (size_t) f->width * f->height * 3;
    im.rgb = v->rgb + (size_t) k->next * size;
    if (glm_convert_frame(&k->conv, f, im.rgb, err) != 0) {
        return -1;
    }
    if (k->orientation != 1) {
        uint8_t *slot = im.rgb;

        im.width = f->width;
        im.height = f->height;
        im.rgb = malloc(size);
        if (im.rgb == NULL) {
            return glm_errf(err, "out of memory rotating a video frame");
        }
        memcpy(im.rgb, slot, size);
        if (glm_image_apply_orientation(&im, k->orientation, err) != 0) {
            free(im.rgb);
            return -1;
        }
        memcpy(slot, im.rgb, size);
        free(im.rgb);
    }
    k->next++;
    while (k->next < v->n_frames && v->frame_index[k->next] == v->frame_index[k->next - 1]) {
        memcpy(v->rgb + (size_t) k->next * size, v->rgb + (size_t) (k->next - 1) * size, size);
        k->next++;
    }
    return 0;
}

/* Decodes stream idx from the start until every chosen frame is kept. */
static int
glm_decode_chosen(glm_demux *d, int idx, const AVCodec *codec, glm_keep *k, glm_err *err)
{
    AVStream *st = d->fc->streams[idx];
    AVCodecContext *dc = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int r, rc = -1, flushing = 0;

    if (dc == NULL || pkt == NULL || f == NULL) {
        glm_errf(err, "out of memory for a video decoder");
        goto done;
    }
    if (avcodec_parameters_to_context(dc, st->codecpar) < 0) {
        glm_errf(err, "corrupt video: bad codec parameters");
        goto done;
    }
    dc->pkt_timebase = st->time_base;
    dc->max_pixels = k->lim->max_pixels;
    dc->thread_count = 1;
    r = avcodec_open2(dc, codec, NULL);
    if (r < 0) {
        glm_errf(err, "not a supported video: the %s decoder does not open (%s)", codec->name,
                 av_err2str(r));
        goto done;
    }
    while (k->next < k->v->n_frames) {
        if (!flushing) {
            r = av_read_frame(d->fc, pkt);
            if (r < 0) {
                flushing = 1;
                avcodec_send_packet(dc, NULL);
            } else if (pkt->stream_index != idx) {
                av_packet_unref(pkt);
                continue;
            } else {
                /* a corrupt packet is skipped, as the CLI skips it */
                avcodec_send_packet(dc, pkt);
                av_packet_unref(pkt);
            }
        }
        while (k->next < k->v->n_frames && (r = avcodec_receive_frame(dc, f)) == 0) {
            if (glm_keep_frame(k, f, err) != 0) {
                av_frame_unref(f);
                goto done;
            }
            k->decoded++;
            av_frame_unref(f);
        }
        if (flushing && k->next < k->v->n_frames && r != 0) {
            glm_errf(err, "video has only %lld decodable frames, the sampler chose frame %d",
                     (long long) k->decoded, k->v->frame_index[k->next]);
            goto done;
        }
    }
    rc = 0;
done:
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    return rc;
}

int
glm_video_decode(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_frame_sampler sampler, void *sampler_ctx, glm_video *out, glm_err *err)
{
    glm_media_limits def;
    glm_demux d;
    glm_keep keep;
    const AVCodec *codec = NULL;
    AVStream *st;
    int idx, n, rc = -1;
    int64_t total, w, h;
    double seconds;

    memset(out, 0, sizeof(*out));
    memset(&keep, 0, sizeof(keep));
    pthread_once(&glm_ffmpeg_once, glm_ffmpeg_init);
    if (lim == NULL) {
        glm_media_limits_default(&def);
        lim = &def;
    }
    if (len == 0 || data == NULL) {
        return glm_errf(err, "not a supported video: no data");
    }
    if (len > lim->max_encoded_bytes) {
        return glm_errf(err, "video data is %zu bytes, over the limit of %zu", len,
                        lim->max_encoded_bytes);
    }
    if (glm_demux_open(&d, data, len, err) != 0) {
        return -1;
    }
    if (glm_demux_probe(&d, lim, &idx, &codec, err) != 0) {
        goto done;
    }
    st = d.fc->streams[idx];
    w = st->codecpar->width;
    h = st->codecpar->height;
    if (w > 0 && h > 0 && (w > INT32_MAX / h || w * h > lim->max_pixels)) {
        glm_errf(err, "video frames are %lldx%lld = %lld pixels, over the limit of %lld "
                 "(decompression bomb guard)", (long long) w, (long long) h,
                 (long long) (w * h), (long long) lim->max_pixels);
        goto done;
    }
    out->meta.fps = glm_video_fps(st);
    out->meta.duration = glm_video_duration(d.fc, st);
    seconds = out->meta.duration;
    keep.orientation = glm_video_orientation(st);
    total = st->nb_frames;
    if (total <= 0) {
        total = glm_count_packets(&d, idx);
        glm_demux_close(&d);
        if (glm_demux_open(&d, data, len, err) != 0
            || glm_demux_probe(&d, lim, &idx, &codec, err) != 0) {
            goto done;
        }
    }
    if (total <= 0) {
        glm_errf(err, "corrupt video: no frames in the video stream");
        goto done;
    }
    if (total > GLM_VIDEO_MAX_STREAM_FRAMES) {
        glm_errf(err, "video has over %d frames, more than this server reads",
                 GLM_VIDEO_MAX_STREAM_FRAMES);
        goto done;
    }
    if (seconds <= 0 && out->meta.fps > 0) {
        seconds = (double) total / out->meta.fps;
    }
    if (seconds > lim->max_duration) {
        glm_errf(err, "video is %.1f s long, over the limit of %g s", seconds,
                 lim->max_duration);
        goto done;
    }
    out->meta.total_frames = (int) total;

    out->frame_index = malloc(sizeof(int) * (size_t) (total + 1));
    if (out->frame_index == NULL) {
        glm_errf(err, "out of memory for a video's frame list");
        goto done;
    }
    n = sampler(sampler_ctx, &out->meta, out->frame_index, (int) total + 1, err);
    if (n < 0) {
        glm_err_prefix(err, "frame sampler");
        goto done;
    }
    if (glm_check_indices(out->frame_index, n, (int) total, lim, err) != 0) {
        goto done;
    }
    out->n_frames = n;
    if (w > 0 && h > 0 && (int64_t) n * w * h > lim->max_video_pixels) {
        glm_errf(err, "video would keep %d frames of %lldx%lld = %lld pixels, over the limit "
                 "of %lld", n, (long long) w, (long long) h, (long long) (n * w * h),
                 (long long) lim->max_video_pixels);
        goto done;
    }
    keep.v = out;
    keep.lim = lim;
    rc = glm_decode_chosen(&d, idx, codec, &keep, err);
done:
    glm_converter_free(&keep.conv);
    glm_demux_close(&d);
    if (rc != 0) {
        glm_video_free(out);
    }
    return rc;
}
