#!/usr/bin/env python3
"""make_big_model.py: a GLM-4.5-Air-shaped FP8 checkpoint at the real widths,
2 layers, for `make big-check` (issue 11, point 6).  Standard library only.

Shapes are GLM-4.5-Air's (t/fixtures/configs/GLM-4.5-Air-FP8/config.json,
MODEL.md 1.2): hidden 4096, 96 query / 8 KV heads of 128 (partial rotary
0.5), layer 0 dense with intermediate 10944, layer 1 MoE with 128 experts
of 1408 (top 8) and one shared expert, vocabulary 151552; only the layer
count is cut, to 2 (about 5 GB instead of 108).

Format: compressed-tensors FP8 E4M3 weights with 128x128 block scales
(strategy "block", the scheme the engine's loader reads: the scale tensor
is `weight_scale`, F32 [ceil(out/128), ceil(in/128)]); BF16 where the
release keeps BF16 (embed_tokens, lm_head, norms, q/k/v biases, the MoE
router `mlp.gate`), e_score_correction_bias F32.

Values are random but sane: FP8 codes drawn with exponents 6..8 only
(|w| in [0.5, 4): no NaN, no subnormals) and a block scale that makes
each weight's RMS about 1/sqrt(in), so activations keep their scale
through every projection; BF16 tensors of about +-0.01 (norms 1.0).
Bytes come from os.urandom and bytes.translate, never a per-element loop.
The tokenizer files are copied from a fixture (its vocabulary is smaller
than 151552: the engine accepts that, as real GLM checkpoints pad theirs).

usage: make_big_model.py OUT_DIR [--fixture DIR] [--layers N]
"""
import json
import os
import shutil
import struct
import sys
import time

H, HEADS, KV_HEADS, HD = 4096, 96, 8, 128
DENSE_I, MOE_I, EXPERTS, TOPK, VOCAB = 10944, 1408, 128, 8, 151552
BLOCK = 128
CHUNK = 64 << 20

# FP8 E4M3: sign from bit 7, exponent field 6, 7 or 8 (values 2^-1..2^1
# times 1.mmm), mantissa from the low 3 bits
FP8_TABLE = bytes((b & 0x80) | ((6 + (b >> 3) % 3) << 3) | (b & 7) for b in range(256))
# BF16's high byte: sign and the exponent's top 7 bits, 0x3c -> 2^-7..2^-6
BF16_HI_TABLE = bytes((b & 0x80) | 0x3c for b in range(256))
FP8_RMS = 1.939        # RMS of the FP8_TABLE values: sqrt(mean(v^2)) over the 48 codes


def config(layers):
    return {
        "architectures": ["Glm4MoeForCausalLM"], "attention_bias": True,
        "attention_dropout": 0.0, "pad_token_id": 151329,
        "eos_token_id": [151329, 151336, 151338], "head_dim": HD, "hidden_act": "silu",
        "hidden_size": H, "partial_rotary_factor": 0.5, "initializer_range": 0.02,
        "intermediate_size": DENSE_I, "max_position_embeddings": 131072,
        "model_type": "glm4_moe", "moe_intermediate_size": MOE_I, "norm_topk_prob": True,
        "num_attention_heads": HEADS, "n_group": 1, "topk_group": 1,
        "n_routed_experts": EXPERTS, "n_shared_experts": 1, "routed_scaling_factor": 1.0,
        "num_experts_per_tok": TOPK, "first_k_dense_replace": 1,
        "num_hidden_layers": layers, "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 1000000, "num_nextn_predict_layers": 0,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.54.0", "use_cache": True, "use_qk_norm": False,
        "vocab_size": VOCAB,
        "quantization_config": {
            "config_groups": {"group_0": {
                "input_activations": {"dynamic": True, "group_size": 128, "num_bits": 8,
                                      "strategy": "group", "symmetric": True, "type": "float"},
                "output_activations": None, "targets": ["Linear"],
                "weights": {"block_structure": [BLOCK, BLOCK], "dynamic": False,
                            "group_size": None, "num_bits": 8, "strategy": "block",
                            "symmetric": True, "type": "float"}}},
            "format": "float-quantized", "global_compression_ratio": None,
            "ignore": ["lm_head", "model.embed_tokens", "re:.*mlp\\.gate$"],
            "kv_cache_scheme": None, "quant_method": "compressed-tensors",
            "quantization_status": "compressed"},
    }


def tensors(layers):
    """(name, dtype, shape, fill) in file order; fill: fp8|bf16|ones|zeros|scale:<in>"""
    out = [("model.embed_tokens.weight", "BF16", [VOCAB, H], "bf16")]

    def linear(name, rows, cols):
        out.append((name + ".weight", "F8_E4M3", [rows, cols], "fp8"))
        out.append((name + ".weight_scale", "F32",
                    [-(-rows // BLOCK), -(-cols // BLOCK)], "scale:%d" % cols))

    for l in range(layers):
        p = "model.layers.%d." % l
        out.append((p + "input_layernorm.weight", "BF16", [H], "ones"))
        out.append((p + "post_attention_layernorm.weight", "BF16", [H], "ones"))
        for proj, rows in (("q", HEADS * HD), ("k", KV_HEADS * HD), ("v", KV_HEADS * HD)):
            linear(p + "self_attn.%s_proj" % proj, rows, H)
            out.append((p + "self_attn.%s_proj.bias" % proj, "BF16", [rows], "bf16"))
        linear(p + "self_attn.o_proj", H, HEADS * HD)
        if l == 0:
            linear(p + "mlp.gate_proj", DENSE_I, H)
            linear(p + "mlp.up_proj", DENSE_I, H)
            linear(p + "mlp.down_proj", H, DENSE_I)
            continue
        out.append((p + "mlp.gate.weight", "BF16", [EXPERTS, H], "bf16"))
        out.append((p + "mlp.gate.e_score_correction_bias", "F32", [EXPERTS], "zeros"))
        linear(p + "mlp.shared_experts.gate_proj", MOE_I, H)
        linear(p + "mlp.shared_experts.up_proj", MOE_I, H)
        linear(p + "mlp.shared_experts.down_proj", H, MOE_I)
        for e in range(EXPERTS):
            linear(p + "mlp.experts.%d.gate_proj" % e, MOE_I, H)
            linear(p + "mlp.experts.%d.up_proj" % e, MOE_I, H)
            linear(p + "mlp.experts.%d.down_proj" % e, H, MOE_I)
    out.append(("model.norm.weight", "BF16", [H], "ones"))
    out.append(("lm_head.weight", "BF16", [VOCAB, H], "bf16"))
    return out


SIZE = {"BF16": 2, "F32": 4, "F8_E4M3": 1}


def nbytes(dtype, shape):
    n = SIZE[dtype]
    for d in shape:
        n *= d
    return n


def fill_bytes(fill, n):
    """n bytes of the tensor's data (n is a whole number of elements)"""
    if fill == "fp8":
        return os.urandom(n).translate(FP8_TABLE)
    if fill == "bf16":
        buf = bytearray(os.urandom(n))
        buf[1::2] = buf[1::2].translate(BF16_HI_TABLE)
        return bytes(buf)
    if fill == "ones":
        return b"\x80\x3f" * (n // 2)          # BF16 1.0
    if fill == "zeros":
        return bytes(n)
    if fill.startswith("scale:"):
        cols = int(fill[6:])
        s = 1.0 / (FP8_RMS * cols ** 0.5)
        return struct.pack("<f", s) * (n // 4)
    raise ValueError(fill)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__.strip().splitlines()[-1])
    out_dir = args[0]
    fixture = "t/fixtures/glm45-air-tiny"
    layers = 2
    i = 1
    while i < len(args):
        if args[i] == "--fixture":
            fixture = args[i + 1]
        elif args[i] == "--layers":
            layers = int(args[i + 1])
        else:
            sys.exit("make_big_model.py: unknown option " + args[i])
        i += 2
    if layers < 2:
        sys.exit("make_big_model.py: --layers must be at least 2 (one dense, one MoE)")

    os.makedirs(out_dir, exist_ok=True)
    tl = tensors(layers)
    header, off = {}, 0
    for name, dtype, shape, _ in tl:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    total = off
    path = os.path.join(out_dir, "model.safetensors")
    tmp = path + ".partial"
    t0 = time.time()
    done = 0
    last = 0.0
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, dtype, shape, fill in tl:
            n = nbytes(dtype, shape)
            elem = SIZE[dtype]
            step = CHUNK - CHUNK % (elem * 2)
            left = n
            while left > 0:
                k = min(step, left)
                f.write(fill_bytes(fill, k))
                left -= k
                done += k
                now = time.time()
                if now - last >= 2.0 or done == total:
                    last = now
                    print("make_big_model: %.2f of %.2f GiB written (%.0f MB/s)"
                          % (done / 2**30, total / 2**30, done / 1e6 / max(now - t0, 1e-9)),
                          flush=True)
    os.replace(tmp, path)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config(layers), f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json",
                 "chat_template.jinja"):
        src = os.path.join(fixture, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(out_dir, name))
    print("make_big_model: %s: %d tensors, %.2f GiB, %d layers, in %.0f s"
          % (path, len(tl), (total + 8 + len(hjson)) / 2**30, layers, time.time() - t0))


if __name__ == "__main__":
    main()
