#!/usr/bin/env python3
"""
make_config_fixtures.py: the tensor manifests of the published GLM-4.5,
GLM-4.5-Air and GLM-4.5V checkpoints, and their FP8 releases, for
`glm-engine plan` (engine/model/tensor_list.h describes the format).

Needs only python3 (no torch, no download): the shapes come from config.json
and the tensor names of /work/shared/reference/MODEL.md section 2.

  t/fixtures/configs/<model>/config.json   committed by hand, as published
                                           (t/fixtures/configs/README.md says
                                           what is verified)
  t/fixtures/configs/<model>/tensors.txt   written here: NAME DTYPE SHAPE,
                                           {a..b} ranges in names
  t/fixtures/configs/<model>-FP8/          written here: config.json (the
                                           BF16 one plus quantization_config)
                                           and tensors.txt

The FP8 releases are written in the scheme MODEL.md section 1.3 gives as
likely (compressed-tensors, FP8 E4M3 weights with per-output-channel
`weight_scale` [out, 1], BF16 like llm-compressor writes them; lm_head,
embeddings, norms, routers, biases, the vision tower's attn.qkv and its
convolutions BF16; activations dynamic per token).  That scheme is
UNVERIFIED: `--scheme block` writes the DeepSeek-style alternative (128x128
blocks, F32 `weight_scale_inv`) instead, and t/plan_check.py checks that the
plan's verdicts do not depend on which one the releases use.

Each model's totals are checked against published figures before anything is
written:
  GLM-4.5V     18,106 tensors and 107,710,933,120 parameters (MODEL.md
               section 0: the real checkpoint's dump)
  GLM-4.5-Air  106.85 B parameters without the MTP layer, 2.38 B in it
               (PERFORMANCE.md section 2a, which counts the MTP layer without
               its copies of the embedding and the head)
  GLM-4.5      355 B parameters (the GLM-4.5 README), within 1 %

usage: make_config_fixtures.py [--out DIR] [--scheme channel|block] [--check]
  --check   write nothing: compare what would be written with the files
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "fixtures", "configs")
MODELS = ["GLM-4.5", "GLM-4.5-Air", "GLM-4.5V"]

DTYPE_BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1}


class Manifest:
    """Lines of NAME DTYPE SHAPE; names may hold {a..b} ranges."""

    def __init__(self, title):
        self.lines = [f"# {title}",
                      "# written by t/reference/make_config_fixtures.py: NAME DTYPE SHAPE,",
                      "# {a..b} in a name stands for every integer from a to b"]

    def add(self, name, dtype, shape):
        self.lines.append(f"{name} {dtype} [{','.join(str(d) for d in shape)}]")

    def text(self):
        return "\n".join(self.lines) + "\n"

    def expanded(self):
        """(name, dtype, shape) for every tensor, the ranges expanded."""
        out = []
        for line in self.lines:
            if line.startswith("#"):
                continue
            name, dtype, shape = line.split(" ", 2)
            dims = [int(d) for d in shape.strip("[]").split(",") if d]
            for n in expand(name):
                out.append((n, dtype, dims))
        return out


def expand(name):
    m = re.search(r"\{(\d+)\.\.(\d+)\}", name)
    if not m:
        return [name]
    out = []
    for i in range(int(m.group(1)), int(m.group(2)) + 1):
        out.extend(expand(name[:m.start()] + str(i) + name[m.end():]))
    return out


def rng(a, b):
    """a range for a name: "{a..b}", or "a" when it is one number"""
    return str(a) if a == b else f"{{{a}..{b}}}"


class Writer:
    """Adds a Linear layer's weight in BF16, or FP8 with its scale."""

    def __init__(self, manifest, scheme, fp8):
        self.m, self.scheme, self.fp8 = manifest, scheme, fp8

    def linear(self, module, out, inp, quantized=True, bias=False):
        if self.fp8 and quantized:
            self.m.add(f"{module}.weight", "F8_E4M3", [out, inp])
            if self.scheme == "channel":
                self.m.add(f"{module}.weight_scale", "BF16", [out, 1])
            else:
                self.m.add(f"{module}.weight_scale_inv", "F32",
                           [-(-out // 128), -(-inp // 128)])
        else:
            self.m.add(f"{module}.weight", "BF16", [out, inp])
        if bias:
            self.m.add(f"{module}.bias", "BF16", [out])

    def norm(self, module, dim):
        self.m.add(f"{module}.weight", "BF16", [dim])


def decoder_layers(w, t, prefix, layers, first, last):
    """Layers first..last (a range) of the text decoder (MODEL.md section 2)."""
    H, d = t["hidden_size"], t["head_dim"]
    heads, kv = t["num_attention_heads"], t["num_key_value_heads"]
    dense_end = t["first_k_dense_replace"] - 1
    L = f"{prefix}layers.{rng(first, last)}"
    w.norm(f"{L}.input_layernorm", H)
    w.norm(f"{L}.post_attention_layernorm", H)
    w.linear(f"{L}.self_attn.q_proj", heads * d, H, bias=t["attention_bias"])
    w.linear(f"{L}.self_attn.k_proj", kv * d, H, bias=t["attention_bias"])
    w.linear(f"{L}.self_attn.v_proj", kv * d, H, bias=t["attention_bias"])
    w.linear(f"{L}.self_attn.o_proj", H, heads * d)
    if t.get("use_qk_norm"):
        w.norm(f"{L}.self_attn.q_norm", d)
        w.norm(f"{L}.self_attn.k_norm", d)
    if first <= dense_end:
        D = f"{prefix}layers.{rng(first, min(last, dense_end))}.mlp"
        I = t["intermediate_size"]
        w.linear(f"{D}.gate_proj", I, H)
        w.linear(f"{D}.up_proj", I, H)
        w.linear(f"{D}.down_proj", H, I)
    if last > dense_end:
        M = f"{prefix}layers.{rng(max(first, dense_end + 1), last)}.mlp"
        E, Im = t["n_routed_experts"], t["moe_intermediate_size"]
        Ish = Im * t["n_shared_experts"]
        # the router is not an nn.Linear in transformers: never quantized
        w.m.add(f"{M}.gate.weight", "BF16", [E, H])
        w.m.add(f"{M}.gate.e_score_correction_bias", "F32", [E])
        X = f"{M}.experts.{rng(0, E - 1)}"
        w.linear(f"{X}.gate_proj", Im, H)
        w.linear(f"{X}.up_proj", Im, H)
        w.linear(f"{X}.down_proj", H, Im)
        w.linear(f"{M}.shared_experts.gate_proj", Ish, H)
        w.linear(f"{M}.shared_experts.up_proj", Ish, H)
        w.linear(f"{M}.shared_experts.down_proj", H, Ish)


def text_model(w, t, prefix):
    H, V, n = t["hidden_size"], t["vocab_size"], t["num_hidden_layers"]
    w.m.add(f"{prefix}embed_tokens.weight", "BF16", [V, H])
    decoder_layers(w, t, prefix, n, 0, n - 1)
    w.norm(f"{prefix}norm", H)
    w.linear("lm_head", V, H, quantized=False)
    # the MTP layers, stored as layers n.. (MODEL.md section 2): a MoE
    # decoder block and the NextN glue; its copies of the embedding and the
    # head are [V-3p] there
    for i in range(t.get("num_nextn_predict_layers", 0)):
        L = f"{prefix}layers.{n + i}"
        decoder_layers(w, t, prefix, n, n + i, n + i)
        w.norm(f"{L}.enorm", H)
        w.norm(f"{L}.hnorm", H)
        w.linear(f"{L}.eh_proj", H, 2 * H, quantized=False)
        w.norm(f"{L}.shared_head.norm", H)
        w.m.add(f"{L}.shared_head.head.weight", "BF16", [V, H])
        w.m.add(f"{L}.embed_tokens.weight", "BF16", [V, H])


def vision_tower(w, v, H):
    """GLM-4.5V's vision tower (MODEL.md section 2); FP8 releases keep the
    convolutions and attn.qkv BF16 (section 1.3)."""
    C, tps, ps, Hv = v["in_channels"], v["temporal_patch_size"], v["patch_size"], v["hidden_size"]
    Iv, Im, m = v["out_hidden_size"], v["intermediate_size"], v["spatial_merge_size"]
    P = "model.visual"
    w.m.add(f"{P}.patch_embed.proj.weight", "BF16", [Hv, C, tps, ps, ps])
    w.m.add(f"{P}.patch_embed.proj.bias", "BF16", [Hv])
    w.norm(f"{P}.post_conv_layernorm", Hv)
    side = v["image_size"] // ps
    w.m.add(f"{P}.embeddings.position_embedding.weight", "BF16", [side * side, Hv])
    B = f"{P}.blocks.{rng(0, v['depth'] - 1)}"
    w.norm(f"{B}.norm1", Hv)
    w.norm(f"{B}.norm2", Hv)
    w.linear(f"{B}.attn.qkv", 3 * Hv, Hv, quantized=False)
    w.linear(f"{B}.attn.proj", Hv, Hv)
    w.linear(f"{B}.mlp.gate_proj", Iv, Hv)
    w.linear(f"{B}.mlp.up_proj", Iv, Hv)
    w.linear(f"{B}.mlp.down_proj", Hv, Iv)
    w.norm(f"{P}.post_layernorm", Hv)
    w.m.add(f"{P}.downsample.weight", "BF16", [H, Hv, m, m])
    w.m.add(f"{P}.downsample.bias", "BF16", [H])
    w.linear(f"{P}.merger.proj", H, H)
    w.m.add(f"{P}.merger.post_projection_norm.weight", "BF16", [H])
    w.m.add(f"{P}.merger.post_projection_norm.bias", "BF16", [H])
    w.linear(f"{P}.merger.gate_proj", Im, H)
    w.linear(f"{P}.merger.up_proj", Im, H)
    w.linear(f"{P}.merger.down_proj", H, Im)


def quantization_config(cfg, scheme):
    """compressed-tensors, as llm-compressor writes it (quant.h)."""
    if scheme == "channel":
        weights = {"dynamic": False, "group_size": None, "num_bits": 8,
                   "strategy": "channel", "symmetric": True, "type": "float"}
        acts = {"dynamic": True, "group_size": None, "num_bits": 8,
                "strategy": "token", "symmetric": True, "type": "float"}
    else:
        weights = {"block_structure": [128, 128], "dynamic": False, "group_size": None,
                   "num_bits": 8, "strategy": "block", "symmetric": True, "type": "float"}
        acts = {"dynamic": True, "group_size": 128, "num_bits": 8,
                "strategy": "group", "symmetric": True, "type": "float"}
    ignore = ["lm_head"]
    if "vision_config" in cfg:
        # vLLM's module names, as GLM-4.5V-FP8's ignore list spells them
        ignore += [f"visual.blocks.{b}.attn.qkv_proj"
                   for b in range(cfg["vision_config"]["depth"])]
    return {
        "config_groups": {"group_0": {"input_activations": acts, "output_activations": None,
                                      "targets": ["Linear"], "weights": weights}},
        "format": "float-quantized",
        "global_compression_ratio": None,
        "ignore": ignore,
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
    }


def build(model, cfg, scheme, fp8):
    m = Manifest(f"zai-org/{model}{'-FP8' if fp8 else ''}: every tensor of the checkpoint"
                 + (f" ({scheme} FP8 scheme, see make_config_fixtures.py)" if fp8 else ""))
    w = Writer(m, scheme, fp8)
    if "text_config" in cfg:
        t = cfg["text_config"]
        text_model(w, t, "model.language_model.")
        vision_tower(w, cfg["vision_config"], t["hidden_size"])
    else:
        text_model(w, cfg, "model.")
    return m


def totals(m, cfg):
    t = cfg.get("text_config", cfg)
    n = t["num_hidden_layers"]
    mtp = re.compile(r"^model\.(language_model\.)?layers\.(\d+)\.")
    main = extra = count = 0
    nbytes = 0
    for name, dtype, shape in m.expanded():
        size = 1
        for d in shape:
            size *= d
        count += 1
        nbytes += size * DTYPE_BYTES[dtype]
        if name.endswith("_scale") or name.endswith("_scale_inv"):
            continue
        g = mtp.match(name)
        if g and int(g.group(2)) >= n:
            # the MTP layer, without its copies of the embedding and head
            if not name.endswith("embed_tokens.weight") and "shared_head.head" not in name:
                extra += size
        else:
            main += size
    return count, main, extra, nbytes


def check_published(model, count, main, extra):
    """The published figures (see the top of this file)."""
    if model == "GLM-4.5V":
        ok = count == 18106 and main == 107710933120 and extra == 0
        want = "18106 tensors, 107710933120 parameters"
    elif model == "GLM-4.5-Air":
        ok = abs(main / 1e9 - 106.85) < 0.01 and abs(extra / 1e9 - 2.38) < 0.01
        want = "106.85 B parameters + 2.38 B in the MTP layer"
    else:
        ok = abs(main / 355e9 - 1) < 0.01
        want = "355 B parameters within 1 %"
    print(f"{model}: {count} tensors, {main} parameters (+ {extra} in MTP layers);"
          f" published: {want}: {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default=CONFIGS)
    ap.add_argument("--scheme", choices=["channel", "block"], default="channel")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    failed = False
    for model in MODELS:
        with open(os.path.join(CONFIGS, model, "config.json")) as f:
            cfg = json.load(f)
        bf16 = build(model, cfg, args.scheme, False)
        count, main_params, extra, _ = totals(bf16, cfg)
        if not check_published(model, count, main_params, extra):
            failed = True
            continue
        qcfg = dict(cfg)
        qcfg["quantization_config"] = quantization_config(cfg, args.scheme)
        outputs = {
            os.path.join(args.out, model, "tensors.txt"): bf16.text(),
            os.path.join(args.out, model + "-FP8", "config.json"):
                json.dumps(qcfg, indent=2) + "\n",
            os.path.join(args.out, model + "-FP8", "tensors.txt"):
                build(model, cfg, args.scheme, True).text(),
        }
        if args.out != CONFIGS:
            outputs[os.path.join(args.out, model, "config.json")] = \
                json.dumps(cfg, indent=2) + "\n"
        for path, text in outputs.items():
            if args.check:
                try:
                    with open(path) as f:
                        same = f.read() == text
                except OSError:
                    same = False
                if not same:
                    print(f"{path}: differs from what this script writes")
                    failed = True
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
