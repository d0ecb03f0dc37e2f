#!/usr/bin/env python3
"""MTP reference logits for the tiny GLM-4.5-Air fixture (t/unit/test_mtp.c).

transformers does not run GLM-4.5's multi-token-prediction layer (it drops
model.layers.<N>.* on load), so this builds it from transformers' own parts
the way vLLM's glm4_moe_mtp.py runs it:

    x = eh_proj(cat(enorm(embed(t+1)), hnorm(h)))   embed zeroed at position 0
    x = Glm4MoeDecoderLayer(x)                       layer N's weights, causal
    logits = lm_head(shared_head.norm(x))            (shared_head.head if stored)

where h is the main model's final-normed hidden state at each position and
t+1 the token after it (the prompt shifted by one, then the model's greedy
next token).  fp32 throughout, as the CPU backend.  Writes
<fixture>/mtp_reference.json: per prompt the ids, the shifted ids and, per
position, the 8 largest MTP logits (id, value).

    /path/to/venv/bin/python t/reference/make_mtp_reference.py t/fixtures/glm45-air-tiny
"""
import json
import os
import random
import sys

import torch
from safetensors.torch import load_file
from transformers import Glm4MoeForCausalLM
from transformers.models.glm4_moe.modeling_glm4_moe import Glm4MoeDecoderLayer, Glm4MoeRMSNorm


def main(fixture):
    model = Glm4MoeForCausalLM.from_pretrained(fixture, torch_dtype=torch.float32,
                                               attn_implementation="sdpa").eval()
    cfg = model.config
    L, H = cfg.num_hidden_layers, cfg.hidden_size
    w = {}
    for name in sorted(os.listdir(fixture)):
        if name.endswith(".safetensors"):
            w.update(load_file(os.path.join(fixture, name)))
    p = "model.layers.%d." % L
    mtp = {k[len(p):]: v.float() for k, v in w.items() if k.startswith(p)}

    def norm(key):
        n = Glm4MoeRMSNorm(H, eps=cfg.rms_norm_eps)
        n.weight.data = mtp[key]
        return n

    enorm, hnorm, head_norm = norm("enorm.weight"), norm("hnorm.weight"), norm("shared_head.norm.weight")
    eh_proj = torch.nn.Linear(2 * H, H, bias=False)
    eh_proj.weight.data = mtp["eh_proj.weight"]
    head = mtp.get("shared_head.head.weight", model.lm_head.weight.data)
    block = Glm4MoeDecoderLayer(cfg, L).float().eval()
    own = {k: v for k, v in mtp.items()
           if not k.startswith(("enorm", "hnorm", "eh_proj", "shared_head", "embed_tokens"))}
    missing, unexpected = block.load_state_dict(own, strict=False)
    # the router's correction bias is a buffer; everything must be loaded
    assert not unexpected, unexpected
    assert all("e_score_correction_bias" in m for m in missing), missing
    if missing:
        block.mlp.gate.e_score_correction_bias.data = mtp["mlp.gate.e_score_correction_bias"]
    block.self_attn.config._attn_implementation = "sdpa"

    rng = random.Random(5)
    out = {"fixture": os.path.basename(fixture.rstrip("/")), "layer": L, "topk": 8,
           "generator": "t/reference/make_mtp_reference.py (transformers %s, torch %s)"
                        % (__import__("transformers").__version__, torch.__version__),
           "prompts": []}
    with torch.no_grad():
        for n in (9, 17, 31):
            ids = [rng.randrange(10, 2900) for _ in range(n)]
            x = torch.tensor([ids])
            h = model.model(input_ids=x).last_hidden_state          # final-normed
            nxt = int(model.lm_head(h[0, -1]).argmax())
            shifted = ids[1:] + [nxt]
            pos = torch.arange(n)[None]
            e = model.model.embed_tokens(torch.tensor([shifted]))
            e[pos == 0] = 0
            y = eh_proj(torch.cat([enorm(e), hnorm(h)], dim=-1))
            pe = model.model.rotary_emb(y, pos)
            y = block(y, attention_mask=None, position_ids=pos, position_embeddings=pe)
            y = y[0] if isinstance(y, tuple) else y
            logits = torch.nn.functional.linear(head_norm(y), head)[0]
            top = torch.topk(logits, 8, dim=-1)
            out["prompts"].append({
                "ids": ids, "shifted": shifted,
                "top": [[[int(i), float(v)] for i, v in zip(top.indices[r], top.values[r])]
                        for r in range(n)]})
    path = os.path.join(fixture, "mtp_reference.json")
    json.dump(out, open(path, "w"))
    print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "t/fixtures/glm45-air-tiny")
