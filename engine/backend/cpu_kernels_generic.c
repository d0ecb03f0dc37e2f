/*
 * cpu_kernels_generic.c: the CPU kernels in plain C for any CPU: 8 lanes of
 * partial sums the compiler may vectorise with the build's own flags,
 * products and sums rounded separately (no FMA), a register tile of 2 rows
 * of x by 4 weight rows.  The fallback where neither AVX2 nor AVX-512 runs.
 */
#include <string.h>

#include "cpu_kernels.h"

#define GLM_VW              8
#define GLM_MM_RMAX         2
#define GLM_KERNELS_SYMBOL  glm_cpu_kernels_generic
#define GLM_KERNELS_NAME    "generic"

#include "util/util.h"

typedef struct {
    float v[GLM_VW];
} glm_vf;

static inline glm_vf
glm_vf_zero(void)
{
    glm_vf r = { { 0 } };
    return r;
}

static inline glm_vf
glm_vf_set1(float f)
{
    glm_vf r;
    int i;

    for (i = 0; i < GLM_VW; i++) {
        r.v[i] = f;
    }
    return r;
}

static inline glm_vf
glm_vf_load(const float *p)
{
    glm_vf r;

    memcpy(r.v, p, sizeof(r.v));
    return r;
}

static inline void
glm_vf_store(float *p, glm_vf v)
{
    memcpy(p, v.v, sizeof(v.v));
}

static inline glm_vf
glm_vf_fma(glm_vf a, glm_vf b, glm_vf c)
{
    int i;

    for (i = 0; i < GLM_VW; i++) {
        c.v[i] += a.v[i] * b.v[i];
    }
    return c;
}

static inline glm_vf
glm_vf_mul(glm_vf a, glm_vf b)
{
    int i;

    for (i = 0; i < GLM_VW; i++) {
        a.v[i] *= b.v[i];
    }
    return a;
}

static inline float
glm_vf_hsum(glm_vf v)
{
    return ((v.v[0] + v.v[4]) + (v.v[1] + v.v[5])) + ((v.v[2] + v.v[6]) + (v.v[3] + v.v[7]));
}

static inline glm_vf
glm_vf_bf16(const uint8_t *p)
{
    glm_vf r;
    uint16_t h;
    int i;

    for (i = 0; i < GLM_VW; i++) {
        memcpy(&h, p + 2 * i, 2);
        r.v[i] = glm_bf16_to_f32(h);
    }
    return r;
}

static inline glm_vf
glm_vf_f16(const uint8_t *p)
{
    glm_vf r;
    uint16_t h;
    int i;

    for (i = 0; i < GLM_VW; i++) {
        memcpy(&h, p + 2 * i, 2);
        r.v[i] = glm_f16_to_f32(h);
    }
    return r;
}

static inline glm_vf
glm_vf_fp8(const uint8_t *p)
{
    glm_vf r;
    int i;

    for (i = 0; i < GLM_VW; i++) {
        r.v[i] = glm_fp8_e4m3_to_f32(p[i]);
    }
    return r;
}

static inline glm_vf
glm_vf_round_bf16(glm_vf v)
{
    int i;

    for (i = 0; i < GLM_VW; i++) {
        v.v[i] = glm_bf16_to_f32(glm_f32_to_bf16(v.v[i]));
    }
    return v;
}

#include "cpu_kernels_body.h"
