#!/usr/bin/env python3
"""generate_check.py ENGINE FIXTURE_DIR...: `glm-engine generate` (greedy) on
every reference prompt must print exactly transformers' greedy continuation
(reference.json "greedy_text", decoded with special tokens kept, which is what
generate prints).  Standard library only."""
import json
import subprocess
import sys


def main():
    engine, fixtures = sys.argv[1], sys.argv[2:]
    bad = 0
    for fx in fixtures:
        ref = json.load(open(fx + "/reference.json", encoding="utf-8"))
        ok = 0
        for i, p in enumerate(ref["prompts"]):
            run = subprocess.run([engine, "generate", "--model", fx, "--prompt", p["text"],
                                  "--max-tokens", str(len(p["greedy_ids"]))],
                                 capture_output=True)
            out = run.stdout.decode("utf-8")
            if out.endswith("\n"):
                out = out[:-1]
            if run.returncode == 0 and out == p["greedy_text"]:
                ok += 1
            else:
                bad += 1
                print("GEN %s prompt %d differs (exit %d)\n  ours: %r\n  ref:  %r\n  %s"
                      % (fx, i, run.returncode, out, p["greedy_text"],
                         run.stderr.decode(errors="replace").strip()))
        print("GEN %s generate==reference %d/%d" % (fx.rstrip("/").split("/")[-1], ok,
                                                    len(ref["prompts"])))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
