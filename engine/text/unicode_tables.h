/*
 * unicode_tables.h: the Unicode data the tokenizer's normalizers read, as
 * generated into unicode_tables.c by t/reference/make_unicode_tables.py
 * (that script's header says which Unicode version each part comes from, and
 * why they differ: they are the versions Hugging Face tokenizers runs).
 *
 * Per code point, a two-stage lookup: glm_uni_stage1[cp >> 7] names a block,
 * glm_uni_stage2[block][cp & 127] the record.  Records are shared between
 * code points with the same data; most code points share record 0 (class 0,
 * no decomposition, unchanged by every form, no lowercase mapping).
 */
#ifndef GLM_UNICODE_TABLES_H
#define GLM_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* quick-check bits: the code point is left as it is by the form and no
 * neighbour can change it (combining class 0, not the second half of any
 * composition), so text of such code points only is already normalized */
#define GLM_UNI_NFC_OK   0x01
#define GLM_UNI_NFD_OK   0x02
#define GLM_UNI_NFKC_OK  0x04
#define GLM_UNI_NFKD_OK  0x08
/* second half of some primary composite (Hangul V and T jamo included) */
#define GLM_UNI_SECOND   0x10

typedef struct {
    uint8_t ccc;            /* canonical combining class */
    uint8_t flags;          /* GLM_UNI_* */
    uint8_t canon_len;      /* full canonical decomposition, 0 = none */
    uint8_t compat_len;     /* full compatibility decomposition when it is not
                             * the canonical one, 0 = same as canonical */
    uint16_t canon_off;     /* into glm_uni_decomp */
    uint16_t compat_off;
    int32_t lower_delta;    /* lowercase = cp + delta (U+0130 is special) */
} glm_uni_record;

typedef struct {
    uint64_t key;           /* first << 21 | second */
    uint32_t composite;
} glm_uni_pair;

extern const glm_uni_record glm_uni_records[];
extern const uint16_t glm_uni_stage1[];
extern const uint16_t glm_uni_stage2[][128];
extern const uint32_t glm_uni_decomp[];
extern const glm_uni_pair glm_uni_pairs[];
extern const size_t glm_uni_n_pairs;
extern const uint32_t glm_uni_white_space[][2];
/* [form][block / 8] bit block % 8: the BMP's 64-code-point block passes the
 * quick check of form (GLM_UNI_NFC..NFKD order; 4: no lowercase mapping) */
extern const uint8_t glm_uni_bmp_ok[5][128];
extern const size_t glm_uni_n_white_space;

/* cp <= 0x10FFFF */
static inline const glm_uni_record *
glm_uni_get(uint32_t cp)
{
    return &glm_uni_records[glm_uni_stage2[glm_uni_stage1[cp >> 7]][cp & 127]];
}

#endif
