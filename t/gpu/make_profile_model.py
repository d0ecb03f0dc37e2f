#!/usr/bin/env python3
"""make_profile_model.py DIR [--layers N] [--hidden H] [--moe-inter I] [--inter I]
[--vocab V] [--dense] [--heads Q --kv-heads K]: a GLM-4.5-Air-shaped checkpoint with random BF16 weights for
`make gpu-profile` (t/gpu/profile.c), written with the standard library only
(no torch, no numpy).

GLM-4.5-Air's shape: 96 query heads and 8 KV heads of 128, half-rotary,
attention biases, 128 routed experts (top 8, one group) plus one shared
expert, the first layer dense, vocabulary 151552.  The default widths are
scaled by 4 so the CPU emulation can afford a step: hidden 1024 (Air: 4096),
expert intermediate 352 (Air: 1408), dense intermediate 2736 (Air: 10944),
and the vocabulary cut to 16384 (Air: 151552; the emulated cuBLASLt's naive
lm_head at batch 64 alone would take many minutes);
every count the profile prints depends on the layer structure (heads,
experts, top-k, layers), not on these widths, except the bytes, which are
compared with the same model's own active bytes.  Pass --hidden 4096
--moe-inter 1408 --inter 10944 --vocab 151552 for Air's widths (about 4.5 GB per MoE layer).

The values are not i.i.d.: one pool of 2^20 random BF16 values is read at a
random offset per tensor (pure Python cannot draw a gigabyte of values in
useful time).  The router and correction bias come from the pool too, so
routing spreads over the experts as a trained router's would not have to.

--dense makes every layer a dense MLP layer (first_k_dense_replace = layers):
a model whose decode step can be captured as a CUDA graph while the MoE op
still waits on the host (the decode-graph tests and profile use it).
--heads/--kv-heads shrink the attention for tests that need a small model.
"""
import argparse
import json
import os
import random
import struct

POOL = 1 << 20


def bf16_bytes(values):
    out = bytearray()
    for v in values:
        out += struct.pack("<f", v)[2:4]
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--moe-inter", type=int, default=352)
    ap.add_argument("--inter", type=int, default=2736)
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--heads", type=int, default=96)
    ap.add_argument("--kv-heads", type=int, default=8)
    a = ap.parse_args()
    n_dense = a.layers if a.dense else 1
    rng = random.Random(14)
    H, V, I, Im = a.hidden, a.vocab, a.inter, a.moe_inter
    heads, kv_heads, hd, E = a.heads, a.kv_heads, 128, 128

    cfg = {
        "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe",
        "attention_bias": True, "first_k_dense_replace": n_dense, "head_dim": hd,
        "hidden_act": "silu", "hidden_size": H, "intermediate_size": I,
        "max_position_embeddings": 131072, "moe_intermediate_size": Im,
        "n_group": 1, "topk_group": 1, "n_routed_experts": E, "n_shared_experts": 1,
        "norm_topk_prob": True, "num_attention_heads": heads, "num_experts_per_tok": 8,
        "num_hidden_layers": a.layers, "num_key_value_heads": kv_heads,
        "num_nextn_predict_layers": 0, "partial_rotary_factor": 0.5,
        "rms_norm_eps": 1e-5, "rope_scaling": {"rope_type": "default"}, "rope_theta": 1000000.0,
        "routed_scaling_factor": 1.0, "tie_word_embeddings": False,
        "use_qk_norm": False, "vocab_size": V, "dtype": "bfloat16",
        "eos_token_id": [V - 3, V - 2], "pad_token_id": V - 3,
    }
    tensors = []        # (name, dtype, shape, kind)

    def lin(name, n, k, bias=False):
        tensors.append((name + ".weight", "BF16", [n, k], "w"))
        if bias:
            tensors.append((name + ".bias", "BF16", [n], "w"))

    tensors.append(("model.embed_tokens.weight", "BF16", [V, H], "w"))
    for l in range(a.layers):
        p = "model.layers.%d." % l
        tensors.append((p + "input_layernorm.weight", "BF16", [H], "norm"))
        tensors.append((p + "post_attention_layernorm.weight", "BF16", [H], "norm"))
        lin(p + "self_attn.q_proj", heads * hd, H, True)
        lin(p + "self_attn.k_proj", kv_heads * hd, H, True)
        lin(p + "self_attn.v_proj", kv_heads * hd, H, True)
        lin(p + "self_attn.o_proj", H, heads * hd)
        if l < n_dense:
            for m in ("gate_proj", "up_proj"):
                lin(p + "mlp." + m, I, H)
            lin(p + "mlp.down_proj", H, I)
            continue
        tensors.append((p + "mlp.gate.weight", "BF16", [E, H], "router"))
        tensors.append((p + "mlp.gate.e_score_correction_bias", "F32", [E], "bias"))
        for e in range(E):
            q = p + "mlp.experts.%d." % e
            lin(q + "gate_proj", Im, H)
            lin(q + "up_proj", Im, H)
            lin(q + "down_proj", H, Im)
        lin(p + "mlp.shared_experts.gate_proj", Im, H)
        lin(p + "mlp.shared_experts.up_proj", Im, H)
        lin(p + "mlp.shared_experts.down_proj", H, Im)
    tensors.append(("model.norm.weight", "BF16", [H], "norm"))
    tensors.append(("lm_head.weight", "BF16", [V, H], "w"))

    pool = bf16_bytes(rng.gauss(0.0, 0.02) for _ in range(POOL))
    pool2 = pool + pool
    header, off = {}, 0
    for name, dt, shape, _ in tensors:
        n = 1
        for d in shape:
            n *= d
        nb = n * (4 if dt == "F32" else 2)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + nb]}
        off += nb
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    os.makedirs(a.dir, exist_ok=True)
    tmp = os.path.join(a.dir, "model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, dt, shape, kind in tensors:
            b, e = header[name]["data_offsets"]
            nb = e - b
            if kind == "norm":
                f.write(bf16_bytes(1.0 + rng.uniform(-0.1, 0.1) for _ in range(nb // 2)))
            elif kind == "bias":
                f.write(struct.pack("<%df" % (nb // 4),
                                    *[rng.uniform(-0.01, 0.01) for _ in range(nb // 4)]))
            else:
                start = rng.randrange(POOL) * 2
                while nb > 0:
                    take = min(nb, 2 * POOL)
                    f.write(pool2[start:start + take])
                    nb -= take
    os.replace(tmp, os.path.join(a.dir, "model.safetensors"))
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


main()
