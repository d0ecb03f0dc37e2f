#!/usr/bin/env python3
"""big_check.py: `make big-check` (issue 11, point 6).  Standard library only.

1. Writes the GLM-4.5-Air-shaped FP8 checkpoint (t/make_big_model.py: real
   widths, 2 layers, ~5 GB) unless MODEL already holds one.
2. CPU: `glm-engine generate` serves a few greedy tokens from it (weights
   mmap'd and used as stored: FP8 widened in registers, never copied); its
   peak RSS (the child's ru_maxrss, from wait4) must stay within the
   checkpoint file's size + the KV pool the engine reports + 1 GiB:
     BIGCHECK backend=cpu peak_rss_gib=<r> bound_gib=<b> ok|FAIL file_gib=<f> kv_gib=<k>
3. CUDA in the emulator (t/gpu/big_check.c), on an emulated card of the
   checkpoint's size + 3 % (GLM_EMU_DEVICE_BYTES): the weights' device bytes
   against the checkpoint's, within 2 %, and one decode step:
     BIGCHECK backend=cuda-emu weight_bytes=<d> checkpoint_bytes=<c> ratio=<d/c> ok|FAIL
(the line format issue 11 asks for).  Exit status 0 only when both say ok.

usage: big_check.py --model DIR --engine GLM_ENGINE --emu BIG_CHECK_BINARY
"""
import os
import re
import subprocess
import sys
import time

GIB = 1 << 30


def arg(name):
    a = sys.argv
    if name not in a or a.index(name) + 1 >= len(a):
        sys.exit(__doc__.strip().splitlines()[-1])
    return a[a.index(name) + 1]


def run_measured(cmd, env=None):
    """runs cmd, returns (rc, stdout, stderr, peak RSS bytes of that child)"""
    import tempfile
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        _, status, usage = os.wait4(p.pid, 0)     # this child's own rusage
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return (p.returncode, fo.read().decode(errors="replace"),
                fe.read().decode(errors="replace"), usage.ru_maxrss * 1024)


def main():
    model, engine, emu = arg("--model"), arg("--engine"), arg("--emu")
    here = os.path.dirname(os.path.abspath(__file__))
    st = os.path.join(model, "model.safetensors")
    if not os.path.exists(st):
        print("big-check: writing %s (about 5 GB, once)" % model, flush=True)
        rc = subprocess.call([sys.executable, os.path.join(here, "make_big_model.py"), model])
        if rc != 0:
            sys.exit("big-check: make_big_model.py failed")
    file_bytes = os.path.getsize(st)
    all_ok = True

    # ---- the CPU backend ----
    t0 = time.time()
    print("big-check: CPU backend, glm-engine generate, 4 greedy tokens ...", flush=True)
    rc, out, err, rss = run_measured([engine, "generate", "--model", model, "--prompt",
                                      "Hello", "--max-tokens", "4"])
    m = re.search(r"KV cache \S+?[,:].*?(\d+) bytes \(", err)
    gen = re.search(r"(\d+) prompt tokens, (\d+) generated", err)
    if rc != 0 or m is None or gen is None:
        print(err.strip())
        print("BIGCHECK backend=cpu peak_rss_gib=%.3f bound_gib=? FAIL file_gib=%.3f kv_gib=?"
              " (generate failed, status %d)" % (rss / GIB, file_bytes / GIB, rc))
        all_ok = False
    else:
        kv = int(m.group(1))
        limit = file_bytes + kv + GIB
        ok = rss <= limit and int(gen.group(2)) > 0
        print("big-check: %s generated in %.1f s" % (gen.group(2), time.time() - t0))
        print("BIGCHECK backend=cpu peak_rss_gib=%.3f bound_gib=%.3f %s file_gib=%.3f kv_gib=%.6f"
              % (rss / GIB, limit / GIB, "ok" if ok else "FAIL", file_bytes / GIB, kv / GIB))
        all_ok &= ok
    sys.stdout.flush()

    # ---- the CUDA backend in the emulator ----
    card = int(file_bytes * 1.03)
    env = dict(os.environ, GLM_EMU_DEVICE_BYTES=str(card))
    print("big-check: CUDA backend in the emulator, a %.2f GiB card, one decode step ..."
          % (card / GIB), flush=True)
    t0 = time.time()
    p = subprocess.run([emu, model], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.decode(errors="replace")
    line = [l for l in out.splitlines() if l.startswith("BIGCHECK backend=cuda-emu ")]
    if not line:
        print(p.stderr.decode(errors="replace").strip())
        print("BIGCHECK backend=cuda-emu weight_bytes=? checkpoint_bytes=? ratio=? FAIL"
              " (big_check exited with status %d)" % p.returncode)
        all_ok = False
    else:
        print("big-check: emulator done in %.1f s" % (time.time() - t0))
        print(line[0])
        all_ok &= re.search(r" ok( |$)", line[0]) is not None
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
