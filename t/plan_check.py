#!/usr/bin/env python3
"""
plan_check.py: `glm-engine plan` against published figures.

usage: plan_check.py ENGINE

1. The official deployment table (zai-org/GLM-4.5 README, "System
   Requirements / Inference"; t/fixtures/configs/README.md copies it with its
   commit): each published configuration fits, and the next smaller one (half
   the GPUs) does not, under the table's conditions (FP8 KV cache, batch at
   most 8).  One PLAN line per case.  The FP8 rows are planned twice: with
   the committed FP8 manifests (per-channel scales, MODEL.md's likely scheme)
   and with 128x128 block scales written on the fly, since the releases'
   scheme is unverified; the verdicts must agree.
2. PERFORMANCE.md's figures for GLM-4.5-Air: KV 184 KiB per token in BF16
   and 92 KiB in FP8; weights 213.7 GB in BF16 and 108.1 GB in FP8 (its FP8
   count makes every small tensor FP8 too: within 0.5 %).
3. Sharding: GLM-4.5-Air BF16 on 8 GPUs holds, per GPU, an eighth of every
   tensor but the norms, routers and correction biases, which it holds whole
   (8 KV heads over 8 ranks: nothing is replicated otherwise); computed here
   from the manifest.
4. The tensor list: the tiny checkpoints' safetensors headers and a manifest
   written here from those headers give the same plan, at 1 and 2 GPUs; and
   the weights at 1 GPU are the bytes of every tensor but the MTP layer's.
GLM-4.5V is not in the table: it is checked on the 4 x H100 of the GLM-V
recipes (SERVING-API.md).

Runs without /work/shared, torch or a GPU: everything it reads is under t/.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIGS = os.path.join(ROOT, "t", "fixtures", "configs")
TINY = ["glm45-air-tiny", "glm45-tiny", "glm45v-tiny", "glm45-air-tiny-fp8-block",
        "glm45-air-tiny-fp8-channel", "glm45v-tiny-fp8-channel"]

# (model, GPU, GPUs the table names); the table's rows, one GPU kind a case
TABLE = [
    ("GLM-4.5", "h100", 16), ("GLM-4.5", "h200", 8),
    ("GLM-4.5-FP8", "h100", 8), ("GLM-4.5-FP8", "h200", 4),
    ("GLM-4.5-Air", "h100", 4), ("GLM-4.5-Air", "h200", 2),
    ("GLM-4.5-Air-FP8", "h100", 2), ("GLM-4.5-Air-FP8", "h200", 1),
]
TABLE_OPTS = ["--kv-cache-dtype", "fp8", "--max-num-seqs", "8"]

failures = []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'}  {what}")
    if not ok:
        failures.append(what)


def plan(engine, model_dir, *opts):
    r = subprocess.run([engine, "plan", "--model", model_dir, *opts],
                       capture_output=True, text=True)
    if r.returncode not in (0, 3):
        raise SystemExit(f"plan failed ({r.returncode}): {r.stderr.strip()}")
    fields = {}
    for line in r.stdout.splitlines():
        if line.startswith("PLAN "):
            fields.update(kv.split("=", 1) for kv in line.split()[1:])
            fields["line"] = line
        m = re.match(r"\s+weights .*; (\d+) bytes$", line)
        if m:
            fields["weight_bytes"] = int(m.group(1))
        m = re.match(r"\s+kv cache .*; (\d+) bytes/token", line)
        if m:
            fields["kv_per_token"] = int(m.group(1))
    if (r.returncode == 0) != (fields.get("fits") == "yes"):
        failures.append(f"{model_dir}: exit status {r.returncode} with fits={fields.get('fits')}")
    fields["stdout"] = r.stdout
    return fields


def table(engine, configs, label):
    print(f"official table ({label}):")
    verdicts = {}
    for model, gpu, n in TABLE:
        for tp, want in ((n, "yes"), (n // 2, "no")):
            if tp < 1:
                continue
            p = plan(engine, os.path.join(configs, model), "--gpu", gpu,
                     "--tensor-parallel-size", str(tp), *TABLE_OPTS)
            print(f"    {p['line']}")
            check(p["fits"] == want, f"{model} on {tp} x {gpu.upper()}: fits={want}"
                  f" ({'the table' if want == 'yes' else 'half the table'})")
            verdicts[(model, gpu, tp)] = p["fits"]
    return verdicts


def expand(name):
    m = re.search(r"\{(\d+)\.\.(\d+)\}", name)
    if not m:
        return [name]
    out = []
    for i in range(int(m.group(1)), int(m.group(2)) + 1):
        out.extend(expand(name[:m.start()] + str(i) + name[m.end():]))
    return out


def manifest_tensors(path):
    sizes = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "F16": 2}
    out = []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, dtype, shape = line.split(" ", 2)
        n = sizes[dtype]
        for d in shape.strip("[]").split(","):
            n *= int(d) if d else 1
        out.extend((x, n) for x in expand(name))
    return out


def safetensors_headers(d):
    files = [f for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    tensors = {}
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        header.pop("__metadata__", None)
        tensors.update(header)
    return tensors


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    engine = sys.argv[1]

    # 1. the table, with both candidate FP8 schemes
    channel = table(engine, CONFIGS, "FP8 per-channel scales, as committed")
    tmp = tempfile.mkdtemp(prefix="plan_check.")
    try:
        r = subprocess.run([sys.executable, os.path.join(ROOT, "t", "reference",
                                                         "make_config_fixtures.py"),
                            "--out", tmp, "--scheme", "block"], capture_output=True, text=True)
        check(r.returncode == 0, "make_config_fixtures.py --scheme block: published totals")
        block = table(engine, tmp, "FP8 128x128 block scales")
        check(all(block[k] == v for k, v in channel.items()),
              "the verdicts do not depend on the FP8 scale scheme")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "t", "reference",
                                                         "make_config_fixtures.py"), "--check"],
                           capture_output=True, text=True)
        check(r.returncode == 0, "the committed manifests are what make_config_fixtures.py"
              " writes" + (f" ({r.stdout.strip()})" if r.returncode else ""))
    finally:
        shutil.rmtree(tmp)

    # GLM-4.5V is not in the table; the GLM-V recipes serve it (and its FP8
    # release) with TP=4 on H100s (SERVING-API.md, --tensor-parallel-size)
    print("GLM-4.5V, as the GLM-V recipes deploy it:")
    for model in ("GLM-4.5V", "GLM-4.5V-FP8"):
        p = plan(engine, os.path.join(CONFIGS, model), "--gpu", "h100",
                 "--tensor-parallel-size", "4")
        print(f"    {p['line']}")
        check(p["fits"] == "yes", f"{model} on 4 x H100: fits=yes")

    # 2. PERFORMANCE.md section 0 and 2a
    print("PERFORMANCE.md's GLM-4.5-Air figures:")
    air = os.path.join(CONFIGS, "GLM-4.5-Air")
    p = plan(engine, air)
    check(p["kv_per_token"] == 184 * 1024, f"BF16 KV {p['kv_per_token']} bytes/token"
          " = 184 KiB")
    check(abs(p["weight_bytes"] / 1e9 - 213.7) < 0.05,
          f"BF16 weights {p['weight_bytes'] / 1e9:.2f} GB = 213.7 GB")
    p = plan(engine, air, "--kv-cache-dtype", "fp8")
    check(p["kv_per_token"] == 92 * 1024, f"FP8 KV {p['kv_per_token']} bytes/token = 92 KiB")
    p = plan(engine, os.path.join(CONFIGS, "GLM-4.5-Air-FP8"))
    check(abs(p["weight_bytes"] / 1e9 / 108.1 - 1) < 0.005,
          f"FP8 weights {p['weight_bytes'] / 1e9:.2f} GB = 108.1 GB within 0.5 %")

    # 3. sharding over 8 GPUs
    print("sharding:")
    whole = re.compile(r"(layernorm|\.norm|mlp\.gate\.)")
    total = repl = 0
    for name, n in manifest_tensors(os.path.join(air, "tensors.txt")):
        if re.match(r"model\.layers\.(\d+)\.", name) and \
                int(re.match(r"model\.layers\.(\d+)\.", name).group(1)) >= 46:
            continue
        total += n
        if whole.search(name):
            repl += n
    p = plan(engine, air, "--tensor-parallel-size", "8", "--gpu", "h100")
    want = (total - repl) // 8 + repl
    check(p["weight_bytes"] == want, f"GLM-4.5-Air BF16 over 8 GPUs: {p['weight_bytes']} bytes"
          f" per GPU = (all {total} - whole {repl}) / 8 + whole")

    # 4. headers and manifests
    print("safetensors headers and manifests:")
    tmp = tempfile.mkdtemp(prefix="plan_check.")
    try:
        for fx in TINY:
            src = os.path.join(ROOT, "t", "fixtures", fx)
            if not os.path.isdir(src):
                check(False, f"{fx}: missing fixture")
                continue
            headers = safetensors_headers(src)
            with open(os.path.join(src, "config.json")) as f:
                cfg = json.load(f)
            n_layers = cfg.get("text_config", cfg)["num_hidden_layers"]
            dst = os.path.join(tmp, fx)
            os.makedirs(dst)
            for f in ("config.json", "preprocessor_config.json"):
                if os.path.exists(os.path.join(src, f)):
                    shutil.copy(os.path.join(src, f), dst)
            sizes = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "F16": 2}
            loaded = 0
            with open(os.path.join(dst, "tensors.txt"), "w") as f:
                for name, h in sorted(headers.items()):
                    f.write(f"{name} {h['dtype']} [{','.join(map(str, h['shape']))}]\n")
                    m = re.match(r"model\.(language_model\.)?layers\.(\d+)\.", name)
                    if not (m and int(m.group(2)) >= n_layers):
                        loaded += h["data_offsets"][1] - h["data_offsets"][0]
            for tp in ("1", "2"):
                a = plan(engine, src, "--tensor-parallel-size", tp)
                b = plan(engine, dst, "--tensor-parallel-size", tp)
                check(a["stdout"] == b["stdout"],
                      f"{fx}: headers and manifest plan alike over {tp} GPU(s)")
                if tp == "1":
                    check(a["weight_bytes"] == loaded, f"{fx}: weights {a['weight_bytes']}"
                          f" bytes = the tensors' bytes but the MTP layer's ({loaded})")
    finally:
        shutil.rmtree(tmp)

    print(f"plan-check: {len(failures)} failed" if failures else "plan-check: all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
