#!/usr/bin/env python3
"""
check_normalizers.py: the engine's normalizers against Hugging Face
tokenizers on every code point, not a sample of them.

  /root/venv-tok/bin/python t/reference/check_normalizers.py build/glm-engine

For each of NFC, NFD, NFKC, NFKD and Lowercase it writes the test
tokenizer (t/fixtures/tokenizer/tokenizer.json) with that normalizer to a
temporary directory, sends the same text to `glm-engine tokenize
--normalize` and to tokenizer.normalizer.normalize_str, and compares line by
line.  The text, one case per line ("\\n" is a boundary of every form, so
lines do not interact):
  - every code point but the surrogates and "\\n" (alone, after "a", and
    before U+0301);
  - every primary composition pair, and each first half with every
    combining mark assigned in Unicode 9.0 (blocked and unblocked orders);
  - every Hangul L+V and LV+T sequence, T = U+11A7 (no trailing consonant)
    included;
  - 20000 random strings mixing starters, marks of many classes, Hangul
    jamo, compatibility characters and characters assigned after 9.0,
    some with runs of marks long enough for the counting sort.
Prints "NORMCHECK <form> lines=N mismatches=M" per form (and the first few
differences); exits 1 when any form mismatches.  (Strip only looks at the
ends of a text, so it cannot be batched this way; its White_Space table is
Rust's is_whitespace, and t/fixtures/tokenizer/normalizers.jsonl covers it.)
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

from tokenizers import Tokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FORMS = {
    "NFC": {"type": "NFC"},
    "NFD": {"type": "NFD"},
    "NFKC": {"type": "NFKC"},
    "NFKD": {"type": "NFKD"},
    "Lowercase": {"type": "Lowercase"},
}


def lines_to_check(seed=13):
    rng = random.Random(seed)
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c != 0x0A]
    out = []
    for c in cps:
        ch = chr(c)
        out.append(ch)
        out.append("a" + ch)
        out.append(ch + "\u0301")
    marks = [chr(c) for c in cps if unicodedata.combining(chr(c))]
    firsts, seconds = set(), set()
    for c in cps:
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<") and len(d.split()) == 2:
            a, b = (chr(int(x, 16)) for x in d.split())
            firsts.add(a)
            seconds.add(b)
            out.append(a + b)
    for a in sorted(firsts):
        for m in marks[::7] + sorted(seconds):
            out.append(a + m)
            out.append(a + "\u0316" + m)
            out.append(a + "\u0346" + m)
    for l in range(0x1100, 0x1113):
        for v in range(0x1161, 0x1176):
            out.append(chr(l) + chr(v))
            lv = 0xAC00 + ((l - 0x1100) * 21 + (v - 0x1161)) * 28
            for t in range(0x11A7, 0x11C3):
                out.append(chr(lv) + chr(t))
                out.append(chr(l) + chr(v) + chr(t))
    pool = ([chr(c) for c in range(0x41, 0x7B)] + marks[::3] + sorted(seconds)
            + [chr(c) for c in range(0x1100, 0x1200)] + [chr(c) for c in range(0xAC00, 0xAC60)]
            + ["\ufb01", "\u2460", "\u00bd", "\u3300", "\ufdfa", "\u1e9b", "\u212b", "\u0344",
               "\u32ff", "\ua7f2", "\U00011938", "\U00011935", "\U00011930", "\u1dfa",
               "\u0130", "\u03a3", "\u1c89", "\u00a0", "\u3000", " ", "\t"])
    for _ in range(20000):
        n = rng.randint(1, 12)
        s = "".join(rng.choice(pool) for _ in range(n))
        if rng.random() < 0.02:
            s += "".join(rng.choice(marks) for _ in range(rng.randint(33, 200)))
        out.append(s)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_normalizers.py ENGINE_BINARY")
    engine = sys.argv[1]
    with open(os.path.join(ROOT, "t", "fixtures", "tokenizer", "tokenizer.json")) as f:
        base = json.load(f)
    lines = lines_to_check()
    text = "\n".join(lines)
    bad_forms = 0
    with tempfile.TemporaryDirectory() as d:
        for name, nz in FORMS.items():
            base["normalizer"] = nz
            with open(os.path.join(d, "tokenizer.json"), "w") as f:
                json.dump(base, f)
            hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            want = hf.normalizer.normalize_str(text).split("\n")
            got = subprocess.run([engine, "tokenize", "--model", d, "--text", "-",
                                  "--normalize"], input=text.encode(), capture_output=True,
                                 check=True).stdout.decode().split("\n")
            mism = sum(1 for a, b in zip(got, want) if a != b) + abs(len(got) - len(want))
            print("NORMCHECK %s lines=%d mismatches=%d" % (name, len(want), mism))
            shown = 0
            for i, (a, b) in enumerate(zip(got, want)):
                if a != b and shown < 5:
                    shown += 1
                    print("  line %d: ours %r, HF %r" % (i, a, b))
            bad_forms += mism != 0
    sys.exit(1 if bad_forms else 0)


if __name__ == "__main__":
    main()
