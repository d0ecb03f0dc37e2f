/*
 * cpu_kernels_avx512.c: the CPU kernels for AVX-512F: 16 lanes, a register
 * tile of 4 rows of x by 4 weight rows (16 accumulators of 32), or of 1-2
 * rows by 8 weight rows for decode, where more rows streamed at once keep
 * more of the memory bandwidth busy.  Compiled for
 * AVX-512 whatever the build's flags; only called where cpuid says the CPU
 * has it (cpu_kernels.c).
 */
#if defined(__x86_64__) && defined(__GNUC__)

#pragma GCC target("avx512f,avx2,fma,f16c")

#include <immintrin.h>

#include "cpu_kernels.h"

#define GLM_VW              16
#define GLM_MM_RMAX         4
#define GLM_MM_C_FEW        8   /* decode: 8 weight rows in flight per tile */
#define GLM_KERNELS_SYMBOL  glm_cpu_kernels_avx512
#define GLM_KERNELS_NAME    "avx512"

typedef __m512 glm_vf;

static inline glm_vf glm_vf_zero(void) { return _mm512_setzero_ps(); }
static inline glm_vf glm_vf_set1(float f) { return _mm512_set1_ps(f); }
static inline glm_vf glm_vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void glm_vf_store(float *p, glm_vf v) { _mm512_storeu_ps(p, v); }
static inline glm_vf glm_vf_fma(glm_vf a, glm_vf b, glm_vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline glm_vf glm_vf_mul(glm_vf a, glm_vf b) { return _mm512_mul_ps(a, b); }
static inline float glm_vf_hsum(glm_vf v) { return _mm512_reduce_add_ps(v); }

/* bf16 is the top half of an fp32: widen and shift */
static inline glm_vf
glm_vf_bf16(const uint8_t *p)
{
    __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *) p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

static inline glm_vf
glm_vf_f16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p));
}

/*
 * E4M3 to fp32 exactly as glm_fp8_e4m3_to_f32: the sign to bit 31 and the
 * exponent and mantissa bits to 30..20 make an fp32 whose exponent is biased
 * by 127 instead of 7, so multiplying by 2^120 gives the value (subnormals
 * included, since fp32 has the range); S.1111.111 is NaN.
 */
static inline glm_vf
glm_vf_fp8(const uint8_t *p)
{
    __m512i b = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) p));
    __m512i bits = _mm512_and_si512(_mm512_slli_epi32(b, 20), _mm512_set1_epi32((int) 0x87f00000u));
    __mmask16 nan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7ff00000)),
                                            _mm512_set1_epi32(0x07f00000));
    glm_vf f = _mm512_mul_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(0x1p120f));

    return _mm512_mask_mov_ps(f, nan, _mm512_castsi512_ps(
                                  _mm512_or_si512(bits, _mm512_set1_epi32(0x78000000))));
}

/* round to nearest even at bf16, NaN kept quiet (glm_f32_to_bf16) */
static inline glm_vf
glm_vf_round_bf16(glm_vf v)
{
    __m512i u = _mm512_castps_si512(v), hi = _mm512_set1_epi32((int) 0xffff0000u);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));

    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(_mm512_and_si512(r, hi));
}

#include "cpu_kernels_body.h"

#else

#include "cpu_kernels.h"

/* not an x86-64 GCC build: cpu_kernels.c never selects this */
const glm_cpu_kernels glm_cpu_kernels_avx512 = { 0 };

#endif
