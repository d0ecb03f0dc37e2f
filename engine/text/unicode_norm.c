/*
 * unicode_norm.c: Unicode normalization forms, lowercase and White_Space for
 * the tokenizer's normalizers.  See unicode_norm.h for the contract; this
 * comment is about how.
 *
 * Normalization (UAX #15) works on stretches of text between boundaries.  A
 * code point whose record has the form's quick-check bit (class 0, unchanged
 * by the form, never the second half of a composition) is a boundary: no
 * decomposition, reordering or composition reaches across it.  So text is
 * scanned for the first code point without the bit; the stretch from the
 * boundary before it up to the next boundary after it is decomposed into
 * scratch (full decompositions come precomputed from the tables, Hangul
 * syllables by arithmetic), put in canonical order (a stable sort by class
 * of each run of non-starters), recomposed for NFC/NFKC, and written out;
 * everything else is copied as it is.
 *
 * In scratch a code point is packed with what the later steps need about it:
 * bits 0-20 the code point, bit 23 "may be the second half of a composite",
 * bits 24-31 its combining class.
 *
 * Composition is the standard algorithm (the one the unicode-normalization
 * crate runs): a character joins the last starter when nothing blocks it,
 * i.e. when it is adjacent to the starter or the character before it has a
 * lower, non-zero class.
 */
#include "unicode_norm.h"
#include "unicode_tables.h"

#include <stdlib.h>
#include <string.h>

#define UNI_CP_MASK      0x1fffffu
#define UNI_SECOND_BIT   0x800000u
#define UNI_CCC_SHIFT    24
/* runs of non-starters up to this long are insertion-sorted, longer ones
 * counting-sorted, so a flood of combining marks stays linear */
#define UNI_SHORT_RUN    32

#define HANGUL_S_BASE    0xac00u
#define HANGUL_S_COUNT   11172u
#define HANGUL_L_BASE    0x1100u
#define HANGUL_L_COUNT   19u
#define HANGUL_V_BASE    0x1161u
#define HANGUL_V_COUNT   21u
#define HANGUL_T_BASE    0x11a7u
#define HANGUL_T_COUNT   28u
#define HANGUL_N_COUNT   (HANGUL_V_COUNT * HANGUL_T_COUNT)

static const uint8_t uni_form_bit[4] = {
    GLM_UNI_NFC_OK, GLM_UNI_NFD_OK, GLM_UNI_NFKC_OK, GLM_UNI_NFKD_OK,
};

static size_t next_not_ok(glm_uni_form form, const uint8_t *s, size_t n, size_t i);
static size_t next_ok(glm_uni_form form, const uint8_t *s, size_t n, size_t i);
static int scratch_reserve(glm_uni_scratch *sc, size_t need, glm_err *err);
static int decompose(glm_uni_form form, const uint8_t *s, size_t n, glm_uni_scratch *sc,
                     size_t *count, glm_err *err);
static void reorder(uint32_t *cp, size_t n, uint32_t *tmp);
static uint32_t compose_pair(uint32_t a, uint32_t b);
static size_t compose(uint32_t *cp, size_t n);
static int normalize_stretch(glm_uni_form form, const uint8_t *s, size_t n,
                             glm_uni_scratch *sc, glm_tokenizer_buf *out, glm_err *err);


void
glm_uni_scratch_free(glm_uni_scratch *sc)
{
    free(sc->cp);
    sc->cp = NULL;
    sc->cap = 0;
}

static int
scratch_reserve(glm_uni_scratch *sc, size_t need, glm_err *err)
{
    size_t cap = sc->cap ? sc->cap : 256;
    uint32_t *p;

    if (need <= sc->cap) {
        return 0;
    }
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(sc->cp, cap * sizeof(*p));
    if (p == NULL) {
        return glm_errf(err, "out of memory normalizing text (%zu code points)", cap);
    }
    sc->cp = p;
    sc->cap = cap;
    return 0;
}


/* ------------------------------------------------------------------------ */
/* quick check */

/* 1 when the 64-code-point BMP block that the 2- or 3-byte sequence at s
 * lies in passes check (a row of glm_uni_bmp_ok) as a whole; the block
 * number is read off the first two bytes without decoding. */
static inline int
block_ok(const uint8_t *check, const uint8_t *s)
{
    uint32_t blk = s[0] < 0xe0 ? (uint32_t) (s[0] & 0x1f)
                               : ((uint32_t) (s[0] & 0x0f) << 6) | (s[1] & 0x3f);

    return (check[blk >> 3] >> (blk & 7)) & 1;
}

/* First offset >= i whose code point lacks the form's quick-check bit
 * (ASCII always has it), or n.  Whole blocks that pass (CJK, Hangul
 * syllables under NFC, most of Latin, Greek, Cyrillic) cost no decoding. */
static size_t
next_not_ok(glm_uni_form form, const uint8_t *s, size_t n, size_t i)
{
    const uint8_t *check = glm_uni_bmp_ok[form];
    uint8_t bit = uni_form_bit[form];
    uint64_t w;
    size_t k;

    while (i < n) {
        if (s[i] < 0x80) {
            if (i + 8 <= n) {
                memcpy(&w, s + i, 8);
                if ((w & 0x8080808080808080ull) == 0) {
                    i += 8;
                    continue;
                }
            }
            i++;
            continue;
        }
        if (s[i] < 0xf0 && block_ok(check, s + i)) {
            i += s[i] < 0xe0 ? 2 : 3;
            continue;
        }
        if ((glm_uni_get(glm_utf8_decode(s + i, n - i, &k))->flags & bit) == 0) {
            return i;
        }
        i += k;
    }
    return n;
}

/* First offset >= i whose code point has bit, or n. */
static size_t
next_ok(glm_uni_form form, const uint8_t *s, size_t n, size_t i)
{
    uint8_t bit = uni_form_bit[form];
    size_t k;

    while (i < n) {
        if (s[i] < 0x80
            || (glm_uni_get(glm_utf8_decode(s + i, n - i, &k))->flags & bit) != 0)
        {
            return i;
        }
        i += k;
    }
    return n;
}

size_t
glm_uni_quick_check(glm_uni_form form, const uint8_t *s, size_t n)
{
    return next_not_ok(form, s, n, 0);
}


/* ------------------------------------------------------------------------ */
/* normalization */

static inline uint32_t
pack(uint32_t cp)
{
    const glm_uni_record *r = glm_uni_get(cp);

    return cp | ((uint32_t) r->ccc << UNI_CCC_SHIFT)
           | ((r->flags & GLM_UNI_SECOND) ? UNI_SECOND_BIT : 0);
}

/* Full decomposition of s[0..n) into sc->cp[0..*count), packed. */
static int
decompose(glm_uni_form form, const uint8_t *s, size_t n, glm_uni_scratch *sc,
          size_t *count, glm_err *err)
{
    int compat = form == GLM_UNI_NFKC || form == GLM_UNI_NFKD;
    const glm_uni_record *r;
    const uint32_t *d;
    size_t i = 0, k, len = 0, j, dn;
    uint32_t cp, si;

    while (i < n) {
        cp = glm_utf8_decode(s + i, n - i, &k);
        i += k;
        /* the longest decomposition is 18 code points */
        if (len + 18 > sc->cap && scratch_reserve(sc, len + 18, err) != 0) {
            return -1;
        }
        si = cp - HANGUL_S_BASE;
        if (si < HANGUL_S_COUNT) {
            sc->cp[len++] = pack(HANGUL_L_BASE + si / HANGUL_N_COUNT);
            sc->cp[len++] = pack(HANGUL_V_BASE + (si % HANGUL_N_COUNT) / HANGUL_T_COUNT);
            if (si % HANGUL_T_COUNT != 0) {
                sc->cp[len++] = pack(HANGUL_T_BASE + si % HANGUL_T_COUNT);
            }
            continue;
        }
        r = glm_uni_get(cp);
        if (compat && r->compat_len != 0) {
            d = glm_uni_decomp + r->compat_off;
            dn = r->compat_len;
        } else if (r->canon_len != 0) {
            d = glm_uni_decomp + r->canon_off;
            dn = r->canon_len;
        } else {
            sc->cp[len++] = pack(cp);
            continue;
        }
        for (j = 0; j < dn; j++) {
            sc->cp[len++] = pack(d[j]);
        }
    }
    *count = len;
    return 0;
}

/* Canonical ordering: each run of non-starters stably sorted by class.
 * tmp has room for n entries. */
static void
reorder(uint32_t *cp, size_t n, uint32_t *tmp)
{
    size_t i = 0, start, end, a, b, pos[256], cnt[256];
    uint32_t x;
    int c;

    while (i < n) {
        if ((cp[i] >> UNI_CCC_SHIFT) == 0) {
            i++;
            continue;
        }
        start = i;
        while (i < n && (cp[i] >> UNI_CCC_SHIFT) != 0) {
            i++;
        }
        end = i;
        if (end - start <= UNI_SHORT_RUN) {
            for (a = start + 1; a < end; a++) {
                x = cp[a];
                for (b = a; b > start && (cp[b - 1] >> UNI_CCC_SHIFT) > (x >> UNI_CCC_SHIFT);
                     b--)
                {
                    cp[b] = cp[b - 1];
                }
                cp[b] = x;
            }
            continue;
        }
        memset(cnt, 0, sizeof(cnt));
        for (a = start; a < end; a++) {
            cnt[cp[a] >> UNI_CCC_SHIFT]++;
        }
        pos[0] = 0;
        for (c = 1; c < 256; c++) {
            pos[c] = pos[c - 1] + cnt[c - 1];
        }
        for (a = start; a < end; a++) {
            tmp[pos[cp[a] >> UNI_CCC_SHIFT]++] = cp[a];
        }
        memcpy(cp + start, tmp, (end - start) * sizeof(*cp));
    }
}

/* The primary composite of a + b, or 0. */
static uint32_t
compose_pair(uint32_t a, uint32_t b)
{
    uint64_t key = ((uint64_t) a << 21) | b;
    size_t lo = 0, hi = glm_uni_n_pairs, mid;

    if (a - HANGUL_L_BASE < HANGUL_L_COUNT && b - HANGUL_V_BASE < HANGUL_V_COUNT) {
        return HANGUL_S_BASE + ((a - HANGUL_L_BASE) * HANGUL_V_COUNT + (b - HANGUL_V_BASE))
                               * HANGUL_T_COUNT;
    }
    if (a - HANGUL_S_BASE < HANGUL_S_COUNT && (a - HANGUL_S_BASE) % HANGUL_T_COUNT == 0
        && b - HANGUL_T_BASE - 1 < HANGUL_T_COUNT - 1)
    {
        return a + (b - HANGUL_T_BASE);
    }
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (glm_uni_pairs[mid].key < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < glm_uni_n_pairs && glm_uni_pairs[lo].key == key ? glm_uni_pairs[lo].composite
                                                                : 0;
}

/* Canonical composition in place; returns the new count. */
static size_t
compose(uint32_t *cp, size_t n)
{
    size_t i, out = 0, starter = SIZE_MAX;
    uint32_t c, ccc, prev_ccc = 0, comp;

    for (i = 0; i < n; i++) {
        c = cp[i];
        ccc = c >> UNI_CCC_SHIFT;
        if (starter != SIZE_MAX && (c & UNI_SECOND_BIT)
            && (out == starter + 1 || (prev_ccc != 0 && prev_ccc < ccc)))
        {
            comp = compose_pair(cp[starter] & UNI_CP_MASK, c & UNI_CP_MASK);
            if (comp != 0) {
                /* a primary composite is a starter; it may compose again */
                cp[starter] = pack(comp);
                continue;
            }
        }
        if (ccc == 0) {
            starter = out;
        }
        cp[out++] = c;
        prev_ccc = ccc;
    }
    return out;
}

static int
normalize_stretch(glm_uni_form form, const uint8_t *s, size_t n, glm_uni_scratch *sc,
                  glm_tokenizer_buf *out, glm_err *err)
{
    size_t count, i;
    uint8_t *o;

    if (decompose(form, s, n, sc, &count, err) != 0
        || scratch_reserve(sc, 2 * count, err) != 0)
    {
        return -1;
    }
    reorder(sc->cp, count, sc->cp + count);
    if (form == GLM_UNI_NFC || form == GLM_UNI_NFKC) {
        count = compose(sc->cp, count);
    }
    if (glm_tokenizer_buf_reserve(out, 4 * count, err) != 0) {
        return -1;
    }
    o = (uint8_t *) out->data + out->len;
    for (i = 0; i < count; i++) {
        o += glm_utf8_encode(sc->cp[i] & UNI_CP_MASK, o);
    }
    out->len = (size_t) (o - (uint8_t *) out->data);
    return 0;
}

int
glm_uni_normalize(glm_uni_form form, const uint8_t *s, size_t n, glm_uni_scratch *sc,
                  glm_tokenizer_buf *out, glm_err *err)
{
    size_t done = 0, i = 0, j, b, k;

    for (;;) {
        j = next_not_ok(form, s, n, i);
        if (j == n) {
            break;
        }
        /* the stretch starts at the boundary before j: the code point just
         * before it, which may be the starter j composes with */
        b = j;
        if (b > done) {
            do {
                b--;
            } while ((s[b] & 0xc0) == 0x80);
        }
        k = next_ok(form, s, n, j);
        if (glm_tokenizer_buf_append(out, s + done, b - done, err) != 0
            || normalize_stretch(form, s + b, k - b, sc, out, err) != 0)
        {
            return -1;
        }
        done = k;
        i = k;
    }
    return glm_tokenizer_buf_append(out, s + done, n - done, err);
}


/* ------------------------------------------------------------------------ */
/* UTF-8 */

/*
 * Returns the offset of the first byte that is not part of well-formed
 * UTF-8 (Unicode table 3-7: no overlongs, surrogates or > U+10FFFF), or n.
 */
size_t
glm_utf8_invalid_at(const uint8_t *s, size_t n)
{
    size_t i = 0;
    uint64_t w;
    uint8_t c, c1;

    while (i < n) {
        if (i + 8 <= n) {
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xc2 && c <= 0xdf) {
            if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) {
                return i;
            }
            i += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (i + 2 >= n) {
                return i;
            }
            c1 = s[i + 1];
            if ((c == 0xe0 && (c1 < 0xa0 || c1 > 0xbf))
                || (c == 0xed && (c1 < 0x80 || c1 > 0x9f))
                || (c1 & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80)
            {
                return i;
            }
            i += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (i + 3 >= n) {
                return i;
            }
            c1 = s[i + 1];
            if ((c == 0xf0 && (c1 < 0x90 || c1 > 0xbf))
                || (c == 0xf4 && (c1 < 0x80 || c1 > 0x8f))
                || (c1 & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80
                || (s[i + 3] & 0xc0) != 0x80)
            {
                return i;
            }
            i += 4;
        } else {
            return i;
        }
    }
    return n;
}


/* ------------------------------------------------------------------------ */
/* lowercase, white space */

size_t
glm_uni_lower_check(const uint8_t *s, size_t n)
{
    size_t i = 0, k;
    uint32_t cp;

    while (i < n) {
        if (s[i] < 0x80) {
            if ((unsigned) (s[i] - 'A') < 26u) {
                return i;
            }
            i++;
            continue;
        }
        if (s[i] < 0xf0 && block_ok(glm_uni_bmp_ok[4], s + i)) {
            i += s[i] < 0xe0 ? 2 : 3;
            continue;
        }
        cp = glm_utf8_decode(s + i, n - i, &k);
        if (cp == 0x130 || glm_uni_get(cp)->lower_delta != 0) {
            return i;
        }
        i += k;
    }
    return n;
}

int
glm_uni_lowercase(const uint8_t *s, size_t n, glm_tokenizer_buf *out, glm_err *err)
{
    size_t i = 0, k;
    uint32_t cp;
    uint8_t *o;

    /* a code point grows by at most half: U+0130 (2 bytes) -> "i\u0307" (3),
     * U+023A (2) -> U+2C65 (3) */
    if (glm_tokenizer_buf_reserve(out, n + n / 2 + 4, err) != 0) {
        return -1;
    }
    o = (uint8_t *) out->data + out->len;
    while (i < n) {
        if (s[i] < 0x80) {
            *o++ = (uint8_t) ((unsigned) (s[i] - 'A') < 26u ? s[i] + 32 : s[i]);
            i++;
            continue;
        }
        cp = glm_utf8_decode(s + i, n - i, &k);
        i += k;
        if (cp == 0x130) {
            *o++ = 'i';
            o += glm_utf8_encode(0x307, o);
            continue;
        }
        o += glm_utf8_encode((uint32_t) ((int32_t) cp + glm_uni_get(cp)->lower_delta), o);
    }
    out->len = (size_t) (o - (uint8_t *) out->data);
    return 0;
}

int
glm_uni_is_white_space(uint32_t cp)
{
    size_t i;

    if (cp < 0x80) {
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
    }
    for (i = 0; i < glm_uni_n_white_space; i++) {
        if (cp >= glm_uni_white_space[i][0] && cp <= glm_uni_white_space[i][1]) {
            return 1;
        }
    }
    return 0;
}
