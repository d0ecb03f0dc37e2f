/*
 * cpu_kernels_avx2.c: the CPU kernels for AVX2 + FMA + F16C: 8 lanes, a
 * register tile of 2 rows of x by 4 weight rows (8 accumulators of 16).
 * Compiled for AVX2 whatever the build's flags; only called where cpuid says
 * the CPU has it (cpu_kernels.c).
 */
#if defined(__x86_64__) && defined(__GNUC__)

#pragma GCC target("avx2,fma,f16c")

#include <immintrin.h>

#include "cpu_kernels.h"

#define GLM_VW              8
#define GLM_MM_RMAX         2
#define GLM_KERNELS_SYMBOL  glm_cpu_kernels_avx2
#define GLM_KERNELS_NAME    "avx2"

typedef __m256 glm_vf;

static inline glm_vf glm_vf_zero(void) { return _mm256_setzero_ps(); }
static inline glm_vf glm_vf_set1(float f) { return _mm256_set1_ps(f); }
static inline glm_vf glm_vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void glm_vf_store(float *p, glm_vf v) { _mm256_storeu_ps(p, v); }
static inline glm_vf glm_vf_fma(glm_vf a, glm_vf b, glm_vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline glm_vf glm_vf_mul(glm_vf a, glm_vf b) { return _mm256_mul_ps(a, b); }

static inline float
glm_vf_hsum(glm_vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* bf16 is the top half of an fp32: widen and shift */
static inline glm_vf
glm_vf_bf16(const uint8_t *p)
{
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

static inline glm_vf
glm_vf_f16(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
}

/* E4M3 to fp32 as in cpu_kernels_avx512.c: rebias by a multiply by 2^120 */
static inline glm_vf
glm_vf_fp8(const uint8_t *p)
{
    __m256i b = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *) p));
    __m256i bits = _mm256_and_si256(_mm256_slli_epi32(b, 20), _mm256_set1_epi32((int) 0x87f00000u));
    __m256i nan = _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7ff00000)),
                                     _mm256_set1_epi32(0x07f00000));
    glm_vf f = _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0x1p120f));
    glm_vf n = _mm256_castsi256_ps(_mm256_or_si256(bits, _mm256_set1_epi32(0x78000000)));

    return _mm256_blendv_ps(f, n, _mm256_castsi256_ps(nan));
}

/* round to nearest even at bf16, NaN kept quiet (glm_f32_to_bf16) */
static inline glm_vf
glm_vf_round_bf16(glm_vf v)
{
    __m256i u = _mm256_castps_si256(v), hi = _mm256_set1_epi32((int) 0xffff0000u);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    /* |u| > inf as signed compare: both sides are below 2^31 */
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                     _mm256_set1_epi32(0x7f800000));
    __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));

    r = _mm256_blendv_epi8(r, q, nan);
    return _mm256_castsi256_ps(_mm256_and_si256(r, hi));
}

#include "cpu_kernels_body.h"

#else

#include "cpu_kernels.h"

/* not an x86-64 GCC build: cpu_kernels.c never selects this */
const glm_cpu_kernels glm_cpu_kernels_avx2 = { 0 };

#endif
