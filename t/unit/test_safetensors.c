/*
 * test_safetensors.c: the safetensors reader on files written here.
 *
 * 1. A file with F32, F16 and BF16 tensors of known values: every value
 *    converts exactly, shapes and names come back, a shape mismatch is the
 *    one-line error naming file, tensor, found and expected.
 * 2. Thousands of damaged variants of that file (random header bytes
 *    changed, random truncations, offsets shifted): open either fails with a
 *    message or succeeds with every tensor inside the file; run under ASan,
 *    so an out-of-bounds read is a failure, not luck.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "model/sampling.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static char dir[256];

static void
write_file(const char *name, const unsigned char *data, size_t n)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* f32 a[2,3] = 0.5*i - 1; f16 b[4] = {1, -2, 0.5, 65504}; bf16 c[3] = {1, -3, 0.15625} */
static unsigned char *
make_file(size_t *len)
{
    const char *header =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"c\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[32,38]}}";
    size_t h = strlen(header), i;
    unsigned char *buf = malloc(8 + h + 38);
    float a[6];
    uint16_t b[4] = { 0x3c00, 0xc000, 0x3800, 0x7bff };
    uint16_t c[3];

    for (i = 0; i < 8; i++) {
        buf[i] = (unsigned char) ((uint64_t) h >> (8 * i));
    }
    memcpy(buf + 8, header, h);
    for (i = 0; i < 6; i++) {
        a[i] = 0.5f * (float) i - 1.0f;
    }
    c[0] = glm_f32_to_bf16(1.0f);
    c[1] = glm_f32_to_bf16(-3.0f);
    c[2] = glm_f32_to_bf16(0.15625f);
    memcpy(buf + 8 + h, a, 24);
    memcpy(buf + 8 + h + 24, b, 8);
    memcpy(buf + 8 + h + 32, c, 6);
    *len = 8 + h + 38;
    return buf;
}

static void
test_values(const unsigned char *file, size_t len)
{
    glm_checkpoint *ck;
    glm_tensor *t;
    glm_err err;
    float out[6];
    int64_t s23[2] = { 2, 3 }, s4[1] = { 4 }, s3[1] = { 3 }, s32[2] = { 3, 2 };
    int i;

    write_file("model.safetensors", file, len);
    ck = glm_checkpoint_open(dir, &err);
    CHECK(ck != NULL, "open: %s", err.msg);
    if (ck == NULL) {
        return;
    }
    CHECK(glm_checkpoint_count(ck) == 3, "3 tensors, got %zu", glm_checkpoint_count(ck));
    t = glm_checkpoint_get(ck, "a", 2, s23, &err);
    CHECK(t != NULL && t->dtype == GLM_DTYPE_F32, "a: %s", err.msg);
    if (t) {
        glm_tensor_to_f32(t, 0, 6, out);
        for (i = 0; i < 6; i++) {
            CHECK(out[i] == 0.5f * (float) i - 1.0f, "a[%d] = %g", i, out[i]);
        }
        glm_tensor_to_f32(t, 4, 2, out);
        CHECK(out[0] == 1.0f && out[1] == 1.5f, "a[4:6] offset read");
    }
    t = glm_checkpoint_get(ck, "b", 1, s4, &err);
    CHECK(t != NULL, "b: %s", err.msg);
    if (t) {
        glm_tensor_to_f32(t, 0, 4, out);
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f && out[3] == 65504.0f,
              "f16 values %g %g %g %g", out[0], out[1], out[2], out[3]);
    }
    t = glm_checkpoint_get(ck, "c", 1, s3, &err);
    CHECK(t != NULL, "c: %s", err.msg);
    if (t) {
        glm_tensor_to_f32(t, 0, 3, out);
        CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.15625f,
              "bf16 values %g %g %g", out[0], out[1], out[2]);
    }
    t = glm_checkpoint_get(ck, "a", 2, s32, &err);
    CHECK(t == NULL && strstr(err.msg, "model.safetensors: tensor 'a' has shape [2, 3],"
                              " expected [3, 2]") != NULL, "shape error: %s", err.msg);
    t = glm_checkpoint_get(ck, "zzz", 1, s3, &err);
    CHECK(t == NULL && strstr(err.msg, "tensor 'zzz' is missing") != NULL,
          "missing error: %s", err.msg);
    glm_checkpoint_close(ck);

    /* bf16 rounding is round-to-nearest-even, as torch */
    CHECK(glm_f32_to_bf16(1.0f + 1.0f / 256.0f) == 0x3f80, "tie rounds to even (down)");
    CHECK(glm_f32_to_bf16(1.0f + 3.0f / 256.0f) == 0x3f82, "tie rounds to even (up)");
    CHECK(glm_f16_to_f32(0x0001) == 5.9604645e-8f, "f16 subnormal");
}

static void
test_damage(const unsigned char *good, size_t len)
{
    unsigned char *buf = malloc(len);
    glm_rng rng;
    int iter, opened = 0, refused = 0;

    glm_rng_seed(&rng, 7);
    for (iter = 0; iter < 3000; iter++) {
        size_t n = len, i, k;
        glm_checkpoint *ck;
        glm_err err;

        memcpy(buf, good, len);
        switch (iter % 3) {
        case 0:     /* flip bytes, mostly in the header */
            for (k = 0; k < 1 + glm_rng_next(&rng) % 4; k++) {
                i = glm_rng_next(&rng) % (len - 38);
                buf[i] = (unsigned char) glm_rng_next(&rng);
            }
            break;
        case 1:     /* truncate anywhere */
            n = glm_rng_next(&rng) % len;
            break;
        default:    /* replace a digit in the header by another digit */
            for (k = 0; k < 3; k++) {
                i = 8 + glm_rng_next(&rng) % (len - 46);
                if (buf[i] >= '0' && buf[i] <= '9') {
                    buf[i] = (unsigned char) ('0' + glm_rng_next(&rng) % 10);
                }
            }
            break;
        }
        write_file("model.safetensors", buf, n);
        err.msg[0] = '\0';
        ck = glm_checkpoint_open(dir, &err);
        if (ck == NULL) {
            refused++;
            if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL) {
                CHECK(0, "damaged file %d refused without a one-line message", iter);
            }
            continue;
        }
        opened++;
        /* every tensor handed out lies inside the mapping: read it all */
        for (i = 0; i < glm_checkpoint_count(ck); i++) {
            glm_tensor *t = glm_checkpoint_at(ck, i);
            volatile unsigned char sink = 0;
            for (k = 0; k < t->nbytes; k++) {
                sink ^= ((const unsigned char *) t->data)[k];
            }
            (void) sink;
        }
        glm_checkpoint_close(ck);
    }
    CHECK(refused > 1000, "most damage detected (%d refused, %d opened)", refused, opened);
    printf("damaged files: %d refused with a message, %d still valid and read in bounds\n",
           refused, opened);
    free(buf);
}

int
main(void)
{
    unsigned char *file;
    size_t len;
    char path[512];

    snprintf(dir, sizeof(dir), "/tmp/glm-test-st-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    file = make_file(&len);
    test_values(file, len);
    test_damage(file, len);
    free(file);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    printf("safetensors: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
