#!/usr/bin/env python3
"""
make_unicode_tables.py: writes engine/text/unicode_tables.c, the Unicode data
behind the tokenizer's normalizers (engine/text/unicode_norm.c), from pinned
Unicode versions: the versions Hugging Face `tokenizers` 0.23.3 itself runs,
which are not one version.

  NFC, NFD, NFKC, NFKD   tokenizers calls the crate unicode-normalization-
                         alignments 0.1.12, whose tables are Unicode 9.0.0.
                         Taken from Python's unicodedata (unidata_version
                         14.0.0, asserted) restricted to the code points
                         assigned in 9.0.0 (perl's \\p{Present_In=9.0}, perl's
                         Unicode::UCD 14.0.0, asserted).  The restriction is
                         exact by Unicode's normalization stability policy: a
                         character's decomposition, combining class and
                         composition exclusion never change once it is
                         assigned, so 14.0's data for 9.0's characters is 9.0's
                         data.  Characters assigned later have combining class
                         0 and no decomposition there, as in the crate.
  Lowercase              tokenizers calls Rust's char::to_lowercase; the
                         tokenizers 0.23.3 wheel has Rust's Unicode 17.0.0
                         tables.  Taken from rustc's own char::to_lowercase
                         (char::UNICODE_VERSION (17, 0, 0), asserted).
  Strip                  Rust's char::is_whitespace (the same rustc).

What it emits, per code point (see engine/text/unicode_tables.h): canonical
combining class, full canonical and compatibility decompositions (Hangul
syllables are left to the algorithm), quick-check bits (the character is
unchanged by a form and is a boundary: combining class 0, not the second half
of any composition), the lowercase mapping; then the primary composition pairs
(canonical two-character decompositions that NFC keeps composed) and the
White_Space ranges.

Run:  python3 t/reference/make_unicode_tables.py     (needs perl and rustc)
Check against tokenizers itself: t/reference/check_normalizers.py
"""

import os
import subprocess
import sys
import tempfile
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "engine", "text", "unicode_tables.c")

NORM_UNICODE = "9.0"            # unicode-normalization-alignments 0.1.12
PY_UNIDATA = "14.0.0"           # Python 3.11's unicodedata
PERL_UCD = "14.0.0"             # perl 5.36's Unicode::UCD
RUST_UNICODE = (17, 0, 0)       # Rust std in the tokenizers 0.23.3 wheel

BLOCK = 128                     # code points per second-stage block

HANGUL_S_BASE, HANGUL_S_COUNT = 0xAC00, 11172
HANGUL_L_BASE, HANGUL_L_COUNT = 0x1100, 19
HANGUL_V_BASE, HANGUL_V_COUNT = 0x1161, 21
HANGUL_T_BASE, HANGUL_T_COUNT = 0x11A7, 28

PERL_ASSIGNED = r"""
use Unicode::UCD;
print Unicode::UCD::UnicodeVersion(), "\n";
my $s = -1;
for my $c (0 .. 0x10FFFF) {
    my $in = ($c < 0xD800 || $c > 0xDFFF) && chr($c) =~ /\p{Present_In=%s}/;
    if ($in && $s < 0) { $s = $c }
    elsif (!$in && $s >= 0) { printf "%%x %%x\n", $s, $c - 1; $s = -1 }
}
printf "%%x %%x\n", $s, 0x10FFFF if $s >= 0;
""" % NORM_UNICODE

RUST_DUMP = r"""
fn main() {
    let v = char::UNICODE_VERSION;
    println!("{} {} {}", v.0, v.1, v.2);
    for c in 0..0x110000u32 {
        if let Some(ch) = char::from_u32(c) {
            let l: Vec<u32> = ch.to_lowercase().map(|x| x as u32).collect();
            if l.len() != 1 || l[0] != c {
                print!("L {:x}", c);
                for x in l { print!(" {:x}", x); }
                println!();
            }
            if ch.is_whitespace() { println!("W {:x}", c); }
        }
    }
}
"""


def assigned_in_norm_version():
    out = subprocess.run(["perl", "-e", PERL_ASSIGNED], check=True, capture_output=True,
                         text=True).stdout.split("\n")
    if out[0] != PERL_UCD:
        sys.exit("perl's Unicode::UCD is %s, this script wants %s" % (out[0], PERL_UCD))
    cps = set()
    for line in out[1:]:
        if line:
            a, b = (int(x, 16) for x in line.split())
            cps.update(range(a, b + 1))
    return cps


def rust_case_and_space():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "dump.rs")
        exe = os.path.join(d, "dump")
        with open(src, "w") as f:
            f.write(RUST_DUMP)
        subprocess.run(["rustc", "-O", "-o", exe, src], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    lines = out.split("\n")
    version = tuple(int(x) for x in lines[0].split())
    if version != RUST_UNICODE:
        sys.exit("rustc's char::UNICODE_VERSION is %s, this script wants %s"
                 % (version, RUST_UNICODE))
    lower, space = {}, []
    for line in lines[1:]:
        f = line.split()
        if not f:
            continue
        if f[0] == "L":
            lower[int(f[1], 16)] = [int(x, 16) for x in f[2:]]
        else:
            space.append(int(f[1], 16))
    return lower, space


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def main():
    if unicodedata.unidata_version != PY_UNIDATA:
        sys.exit("Python's unicodedata is %s, this script wants %s (Python 3.11)"
                 % (unicodedata.unidata_version, PY_UNIDATA))
    assigned = assigned_in_norm_version()
    lower, space = rust_case_and_space()

    def is_hangul_syllable(c):
        return HANGUL_S_BASE <= c < HANGUL_S_BASE + HANGUL_S_COUNT

    # per code point: ccc, canonical / compatibility decomposition, NFC/NFKC
    # of the character alone (for the quick-check bits)
    ccc, canon, compat, nfc_same, nfkc_same = {}, {}, {}, {}, {}
    for c in assigned:
        ch = chr(c)
        k = unicodedata.combining(ch)
        if k:
            ccc[c] = k
        if is_hangul_syllable(c):
            continue
        d = unicodedata.normalize("NFD", ch)
        kd = unicodedata.normalize("NFKD", ch)
        if d != ch:
            canon[c] = [ord(x) for x in d]
        if kd != d:
            compat[c] = [ord(x) for x in kd]
        nfc_same[c] = unicodedata.normalize("NFC", ch) == ch
        nfkc_same[c] = unicodedata.normalize("NFKC", ch) == ch
        for x in d + kd:
            assert ord(x) in assigned, "U+%04X decomposes into a later character" % c

    # primary composites: a two-character canonical decomposition that NFC
    # keeps composed (neither a singleton, an exclusion nor a non-starter
    # decomposition)
    pairs = {}
    for c in assigned:
        if is_hangul_syllable(c):
            continue
        dm = unicodedata.decomposition(chr(c))
        if not dm or dm.startswith("<"):
            continue
        parts = [int(x, 16) for x in dm.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(c)) == chr(c):
            pairs[(parts[0], parts[1])] = c
    second = {b for (_, b) in pairs}
    second.update(range(HANGUL_V_BASE, HANGUL_V_BASE + HANGUL_V_COUNT))
    second.update(range(HANGUL_T_BASE + 1, HANGUL_T_BASE + HANGUL_T_COUNT))

    multi = {c: l for c, l in lower.items() if len(l) != 1}
    if multi != {0x130: [0x69, 0x307]}:
        sys.exit("unexpected multi-character lowercase mappings: %r" % multi)

    # flattened decompositions
    decomp = []
    where = {}

    def place(seq):
        key = tuple(seq)
        if key not in where:
            where[key] = len(decomp)
            decomp.extend(seq)
        return where[key]

    # records: (ccc, flags, canon_off, canon_len, compat_off, compat_len, lower)
    records = {(0, 0xF, 0, 0, 0, 0, 0): 0}
    rec_list = [(0, 0xF, 0, 0, 0, 0, 0)]
    cp_rec = [0] * 0x110000
    for c in range(0x110000):
        k = ccc.get(c, 0)
        cd = canon.get(c)
        kd = compat.get(c)
        if is_hangul_syllable(c):
            nfd_ok = nfkd_ok = False
            nfc_ok = nfkc_ok = True
        else:
            nfd_ok = k == 0 and cd is None
            nfkd_ok = nfd_ok and kd is None
            nfc_ok = k == 0 and nfc_same.get(c, True) and c not in second
            nfkc_ok = k == 0 and nfkc_same.get(c, True) and c not in second
        flags = (nfc_ok << 0) | (nfd_ok << 1) | (nfkc_ok << 2) | (nfkd_ok << 3) \
            | ((c in second) << 4)
        lo = lower.get(c)
        delta = (lo[0] - c) if lo is not None and len(lo) == 1 else 0
        if lo is not None and len(lo) != 1:
            delta = 0           # U+0130: the code spells it out
        rec = (k, flags, place(cd) if cd else 0, len(cd) if cd else 0,
               place(kd) if kd else 0, len(kd) if kd else 0, delta)
        if rec not in records:
            records[rec] = len(rec_list)
            rec_list.append(rec)
        cp_rec[c] = records[rec]
        # unicode_norm.c skips ASCII without a lookup
        assert c >= 0x80 or flags & 0xF == 0xF, "U+%04X" % c
    assert len(rec_list) < 65536 and len(decomp) < 65536
    assert max(max(len(v) for v in canon.values()), max(len(v) for v in compat.values())) < 256

    # per 64-code-point block of the BMP (the block a 2- or 3-byte UTF-8
    # sequence names by its first two bytes): every code point has the
    # form's quick-check bit (forms 0-3), or none lowercases (4)
    bmp_ok = [[0] * (1024 // 8) for _ in range(5)]
    for blk in range(1024):
        recs = [rec_list[cp_rec[c]] for c in range(blk * 64, blk * 64 + 64)]
        for form in range(4):
            if all(r[1] & (1 << form) for r in recs):
                bmp_ok[form][blk // 8] |= 1 << (blk % 8)
        if all(r[6] == 0 for r in recs) and not blk * 64 <= 0x130 < blk * 64 + 64:
            bmp_ok[4][blk // 8] |= 1 << (blk % 8)

    stage1, blocks, block_ids = [], [], {}
    for b in range(0x110000 // BLOCK):
        blk = tuple(cp_rec[b * BLOCK:(b + 1) * BLOCK])
        if blk not in block_ids:
            block_ids[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(block_ids[blk])
    assert len(blocks) < 65536

    w = []
    w.append("/*")
    w.append(" * unicode_tables.c: GENERATED by t/reference/make_unicode_tables.py; do not edit.")
    w.append(" *")
    w.append(" *   python3 t/reference/make_unicode_tables.py")
    w.append(" *")
    w.append(" * Normalization data: Unicode %s.0 (Python unicodedata %s restricted to"
             % (NORM_UNICODE, PY_UNIDATA))
    w.append(" * the code points assigned in %s.0), as unicode-normalization-alignments"
             % NORM_UNICODE)
    w.append(" * 0.1.12 in Hugging Face tokenizers 0.23.3.  Lowercase and White_Space:")
    w.append(" * Unicode %d.%d.%d (Rust's char::to_lowercase / is_whitespace), as the"
             % RUST_UNICODE)
    w.append(" * tokenizers 0.23.3 wheel.  Layout: engine/text/unicode_tables.h.")
    w.append(" */")
    w.append('#include "unicode_tables.h"')
    w.append("")
    w.append("const glm_uni_record glm_uni_records[%d] = {" % len(rec_list))
    for r in rec_list:
        w.append("    { %d, 0x%02x, %d, %d, %d, %d, %d }," % (r[0], r[1], r[3], r[5], r[2],
                                                          r[4], r[6]))
    w.append("};")
    w.append("")
    w.append("const uint16_t glm_uni_stage1[%d] = {" % len(stage1))
    for i in range(0, len(stage1), 16):
        w.append("    " + ", ".join(str(x) for x in stage1[i:i + 16]) + ",")
    w.append("};")
    w.append("")
    w.append("const uint16_t glm_uni_stage2[%d][%d] = {" % (len(blocks), BLOCK))
    for blk in blocks:
        w.append("    {")
        for i in range(0, BLOCK, 16):
            w.append("        " + ", ".join(str(x) for x in blk[i:i + 16]) + ",")
        w.append("    },")
    w.append("};")
    w.append("")
    w.append("const uint32_t glm_uni_decomp[%d] = {" % len(decomp))
    for i in range(0, len(decomp), 8):
        w.append("    " + ", ".join("0x%04x" % x for x in decomp[i:i + 8]) + ",")
    w.append("};")
    w.append("")
    w.append("/* NFC, NFD, NFKC, NFKD, lowercase: bit b of byte b / 8 set when the")
    w.append(" * 64 code points from b * 64 on all pass the form's quick check (no")
    w.append(" * lowercase mapping) */")
    w.append("const uint8_t glm_uni_bmp_ok[5][128] = {")
    for row in bmp_ok:
        w.append("    {")
        for i in range(0, 128, 16):
            w.append("        " + ", ".join("0x%02x" % x for x in row[i:i + 16]) + ",")
        w.append("    },")
    w.append("};")
    w.append("")
    plist = sorted(pairs.items())
    w.append("/* (first << 21 | second) -> composite, sorted by key */")
    w.append("const glm_uni_pair glm_uni_pairs[%d] = {" % len(plist))
    for (a, b), c in plist:
        w.append("    { 0x%011xull, 0x%04x }," % ((a << 21) | b, c))
    w.append("};")
    w.append("")
    sp = ranges(space)
    w.append("const uint32_t glm_uni_white_space[%d][2] = {" % len(sp))
    for a, b in sp:
        w.append("    { 0x%04x, 0x%04x }," % (a, b))
    w.append("};")
    w.append("")
    w.append("const size_t glm_uni_n_pairs = %d;" % len(plist))
    w.append("const size_t glm_uni_n_white_space = %d;" % len(sp))
    with open(OUT, "w") as f:
        f.write("\n".join(w) + "\n")
    print("%s: %d records, %d blocks, %d decomposition code points, %d pairs, "
          "%d lowercase mappings" % (os.path.relpath(OUT, ROOT), len(rec_list), len(blocks),
                                     len(decomp), len(plist), len(lower)))


if __name__ == "__main__":
    main()
