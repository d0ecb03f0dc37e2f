#!/usr/bin/env python3
"""
bench_tokenizer.py: the Hugging Face `tokenizers` baseline for
t/bench/bench_tokenizer.sh.  Same work as `glm-engine bench-tokenizer`:
encode(text, add_special_tokens=False) of every corpus document, one thread,
a warm-up pass, then whole passes for about --seconds.

Prints one line:  hf: <MB/s> MB/s, <tokens/s> tokens/s, <bytes> bytes per pass
"""
import argparse
import json
import os
import sys
import time

# one thread: set before tokenizers is imported (its rayon pool reads them)
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


def load_docs(path):
    """Lines with a "text", except decode cases (those with "decode_ids"),
    as the C bench reads them."""
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            if isinstance(obj, dict) and isinstance(obj.get("text"), str) \
                    and "decode_ids" not in obj:
                docs.append(obj["text"])
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="directory with tokenizer.json")
    ap.add_argument("--corpus", required=True, help="JSONL with {\"text\": ...} lines")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    docs = load_docs(args.corpus)
    if not docs:
        sys.exit("bench_tokenizer.py: no documents in " + args.corpus)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)

    for d in docs:                      # warm-up, as the C bench does
        tok.encode(d, add_special_tokens=False)
    tokens = 0
    passes = 0
    t0 = time.perf_counter()
    while True:
        for d in docs:
            tokens += len(tok.encode(d, add_special_tokens=False).ids)
        passes += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= args.seconds:
            break
    print("hf: %.2f MB/s, %.0f tokens/s, %d bytes per pass"
          % (nbytes * passes / elapsed / 1e6, tokens / elapsed, nbytes))


if __name__ == "__main__":
    main()
