#!/usr/bin/env python3
"""convert.py SRC_DIR OUT_DIR: kernels/*.cu and *.cuh rewritten for the CPU
emulation (emu.cpp): kernel<<<cfg>>>(args) becomes
glm_emu_launch(kernel, glm_emu_config(cfg), args), and
`extern __shared__ T name[];` becomes `T *name = (T *) glm_emu_smem;`.
Everything else is left as written, so the emulation runs the same code."""
import os
import re
import sys


def match_back(s, i, open_c, close_c):
    """index of the open_c matching the close_c at s[i]"""
    depth = 0
    while i >= 0:
        if s[i] == close_c:
            depth += 1
        elif s[i] == open_c:
            depth -= 1
            if depth == 0:
                return i
        i -= 1
    raise SystemExit("convert.py: unbalanced %s" % open_c)


def match_fwd(s, i, open_c, close_c):
    depth = 0
    while i < len(s):
        if s[i] == open_c:
            depth += 1
        elif s[i] == close_c:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise SystemExit("convert.py: unbalanced %s" % open_c)


def convert(src):
    src = re.sub(r"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;",
                 r"\1 *\2 = (\1 *) glm_emu_smem;", src)
    out = []
    pos = 0
    while True:
        i = src.find("<<<", pos)
        if i < 0:
            out.append(src[pos:])
            return "".join(out)
        # the kernel name: an identifier, maybe with template arguments
        j = i - 1
        while src[j].isspace():
            j -= 1
        if src[j] == ">":
            j = match_back(src, j, "<", ">") - 1
        k = j
        while k >= 0 and (src[k].isalnum() or src[k] == "_"):
            k -= 1
        name = src[k + 1:i].strip()
        e = src.find(">>>", i)
        cfg = src[i + 3:e]
        a = e + 3
        while src[a].isspace():
            a += 1
        if src[a] != "(":
            raise SystemExit("convert.py: no arguments after a launch of %s" % name)
        b = match_fwd(src, a, "(", ")")
        args = src[a + 1:b].strip()
        out.append(src[pos:k + 1])
        out.append("glm_emu_launch(%s, glm_emu_config(%s)%s)" %
                   (name, cfg, (", " + args) if args else ""))
        pos = b + 1


def main():
    src_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    for f in sorted(os.listdir(src_dir)):
        if f.endswith(".cu") or f.endswith(".cuh"):
            with open(os.path.join(src_dir, f)) as fh:
                text = convert(fh.read())
            dst = os.path.join(out_dir, f[:-3] + ".cpp" if f.endswith(".cu") else f)
            with open(dst + ".tmp", "w") as fh:
                fh.write(text)
            os.replace(dst + ".tmp", dst)


main()
