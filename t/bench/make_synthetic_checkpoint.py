#!/usr/bin/env python3
"""make_synthetic_checkpoint.py: a GLM-4.5-Air-shaped checkpoint with random
BF16 weights, for CPU benchmarks (ours and llama.cpp's on the same weights).

    python3 t/bench/make_synthetic_checkpoint.py OUT_DIR [--layers N] [--seed S]

Hidden 2048, 12 layers (the first dense), 48 query heads and 4 KV heads of
128, 64 routed experts of 480 with 8 per token plus a shared one: 2.48 B
parameters, 5 GB.  The tokenizer, chat template and generation config are
the committed tiny fixture's (t/fixtures/glm45-air-tiny), so the vocabulary is
3072 tokens.  Weights are random BF16 of magnitude 2^-9 to 2^-4 with random
signs, made from os.urandom with bytes.translate (no numpy): benchmarks need
the bytes and the shapes, not a trained model.  Norm weights are 1, biases 0.

Written once; a second run with the same arguments finds config.json and the
weights file of the size it would write and does nothing.
"""
import argparse
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "glm45-air-tiny")


def config(layers):
    return {
        "architectures": ["Glm4MoeForCausalLM"],
        "model_type": "glm4_moe",
        "attention_bias": True,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "dtype": "bfloat16",
        "eos_token_id": [3000, 3007, 3009],
        "pad_token_id": 3000,
        "first_k_dense_replace": 1,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 5472,
        "max_position_embeddings": 32768,
        "moe_intermediate_size": 480,
        "n_group": 1,
        "n_routed_experts": 64,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": 48,
        "num_experts_per_tok": 8,
        "num_hidden_layers": layers,
        "num_key_value_heads": 4,
        "num_nextn_predict_layers": 0,
        "partial_rotary_factor": 0.5,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"rope_type": "default"},
        "rope_theta": 1000000.0,
        "routed_scaling_factor": 1.0,
        "tie_word_embeddings": False,
        "topk_group": 1,
        "use_cache": True,
        "use_qk_norm": False,
        "vocab_size": 3072,
    }


def tensors(c):
    """(name, dtype, shape, fill) in file order; fill: random, one, zero."""
    H, V = c["hidden_size"], c["vocab_size"]
    q = c["num_attention_heads"] * c["head_dim"]
    kv = c["num_key_value_heads"] * c["head_dim"]
    I, E = c["moe_intermediate_size"], c["n_routed_experts"]
    out = [("model.embed_tokens.weight", "BF16", [V, H], "random")]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        out += [
            (p + "input_layernorm.weight", "BF16", [H], "one"),
            (p + "post_attention_layernorm.weight", "BF16", [H], "one"),
            (p + "self_attn.q_proj.weight", "BF16", [q, H], "random"),
            (p + "self_attn.q_proj.bias", "BF16", [q], "zero"),
            (p + "self_attn.k_proj.weight", "BF16", [kv, H], "random"),
            (p + "self_attn.k_proj.bias", "BF16", [kv], "zero"),
            (p + "self_attn.v_proj.weight", "BF16", [kv, H], "random"),
            (p + "self_attn.v_proj.bias", "BF16", [kv], "zero"),
            (p + "self_attn.o_proj.weight", "BF16", [H, q], "random"),
        ]
        if l < c["first_k_dense_replace"]:
            D = c["intermediate_size"]
            out += [
                (p + "mlp.gate_proj.weight", "BF16", [D, H], "random"),
                (p + "mlp.up_proj.weight", "BF16", [D, H], "random"),
                (p + "mlp.down_proj.weight", "BF16", [H, D], "random"),
            ]
            continue
        out += [
            (p + "mlp.gate.weight", "BF16", [E, H], "random"),
            (p + "mlp.gate.e_score_correction_bias", "F32", [E], "zero"),
        ]
        for e in range(E):
            x = p + "mlp.experts.%d." % e
            out += [
                (x + "gate_proj.weight", "BF16", [I, H], "random"),
                (x + "up_proj.weight", "BF16", [I, H], "random"),
                (x + "down_proj.weight", "BF16", [H, I], "random"),
            ]
        s = c["n_shared_experts"] * I
        out += [
            (p + "mlp.shared_experts.gate_proj.weight", "BF16", [s, H], "random"),
            (p + "mlp.shared_experts.up_proj.weight", "BF16", [s, H], "random"),
            (p + "mlp.shared_experts.down_proj.weight", "BF16", [H, s], "random"),
        ]
    out += [
        ("model.norm.weight", "BF16", [H], "one"),
        ("lm_head.weight", "BF16", [V, H], "random"),
    ]
    return out


# the high byte of a little-endian bf16: the sign from the random byte's top
# bit, the exponent's upper 7 bits 59..61 (with the low bit from the other
# byte: exponents 118..123, magnitudes 2^-9 to 2^-4)
HIGH = bytes(((b & 0x80) | (59 + (b & 0x7f) % 3)) for b in range(256))


def fill_bytes(dtype, numel, fill):
    size = numel * (4 if dtype == "F32" else 2)
    if fill == "zero":
        return bytes(size)
    if fill == "one":
        return b"\x80\x3f" * numel
    buf = bytearray(os.urandom(size))
    buf[1::2] = bytes(buf[1::2]).translate(HIGH)
    return buf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=12)
    args = ap.parse_args()

    c = config(args.layers)
    specs = tensors(c)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, _ in specs:
        numel = 1
        for d in shape:
            numel *= d
        n = numel * (4 if dtype == "F32" else 2)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    total = 8 + len(hb) + off

    os.makedirs(args.out, exist_ok=True)
    st = os.path.join(args.out, "model.safetensors")
    cfg = os.path.join(args.out, "config.json")
    if (os.path.exists(st) and os.path.getsize(st) == total and os.path.exists(cfg)
            and json.load(open(cfg)) == c):
        print("make_synthetic_checkpoint: %s is there already" % args.out)
        return 0
    params = sum(
        (lambda s: __import__("functools").reduce(lambda a, b: a * b, s, 1))(sh)
        for _, _, sh, _ in specs)
    print("make_synthetic_checkpoint: %s: %.2f B parameters, %.2f GB"
          % (args.out, params / 1e9, total / 1e9), file=sys.stderr)
    tmp = st + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, dtype, shape, fill in specs:
            numel = 1
            for d in shape:
                numel *= d
            f.write(fill_bytes(dtype, numel, fill))
    os.replace(tmp, st)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "generation_config.json"):
        shutil.copy(os.path.join(FIXTURE, name), os.path.join(args.out, name))
    with open(cfg, "w") as f:
        json.dump(c, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
