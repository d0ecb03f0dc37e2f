#!/usr/bin/env python3
"""
make_fixtures.py: builds the tiny GLM-4.5 family checkpoints and the reference
outputs that `make reference-check` compares the C engine against.

What it writes (under t/fixtures/ unless --out says otherwise):
  tokenizer/           a byte-level BPE tokenizer (3000 merges' worth of vocab)
                       trained here with GLM-4's pre-tokenizer regex, plus GLM's
                       36 added tokens in GLM's order (ids follow the BPE vocab)
  tokenizer/tok_reference.jsonl
                       the tokenizer test corpus: one JSON object per line,
                       {"text", "ids"} for encode cases and
                       {"decode_ids", "skip_special", "text"} for decode cases
  glm45-air-tiny/      Glm4MoeForCausalLM shaped like GLM-4.5-Air (1 dense layer
                       then MoE, 1 group, qk-norm off, rope_theta 1e6), one
                       safetensors file, RoPE written in the hub's old form
                       (rope_scaling + rope_theta + partial_rotary_factor), and
                       an extra MTP layer the HF model ignores
  glm45-tiny/          Glm4MoeForCausalLM shaped like GLM-4.5 (qk-norm on,
                       routed_scaling_factor 2.5, n_group 4 / topk_group 2,
                       two dense layers), sharded with model.safetensors.index.json
  glm45v-tiny/         Glm4vMoeForConditionalGeneration (tiny vision tower, text
                       part like GLM-4.5V with mrope_section), run text-only
  <fixture>/reference.json
                       transformers' fp32 outputs from the bf16 weights: per
                       prompt the ids, top-k logits at every position, the full
                       last-position logits, and a 32-token greedy continuation
                       with the top-k logits of every decode step

Weights are random (seeded) and saved in bf16 by save_pretrained, as the real
checkpoints are; e_score_correction_bias is stored fp32, as in the real files.
Norm weights, biases and the router correction bias are randomised too, so that
every parameter the engine reads changes the output.

Reproducibility: the committed files are what this script produced with the
versions pinned in requirements.txt beside it (see PINNED below) on CPU.  The
corpus is built from the Python standard library and jieba's dictionary, so
another Python version gives a slightly different corpus; the checks stay valid
because the script regenerates the corpus and its expected ids together.

Run:  python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install -r t/reference/requirements.txt
      ~/venv-ref/bin/python t/reference/make_fixtures.py
"""

import argparse
import glob
import json
import os
import random
import shutil
import sys
import unicodedata

PINNED = {
    "torch": "2.15.0",
    "transformers": "5.23.0",
    "tokenizers": "0.23.3",
    "safetensors": "0.8.0",
    "jieba": "0.42.1",
}

# GLM-4's pre-tokenizer (MODEL.md section 9): cl100k-style, digits in groups of 1-3.
GLM4_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# GLM's added tokens in id order (151329..151364 in the real vocab).  The
# think/tool/arg tags are non-special (kept by skip_special_tokens), as the
# real tokenizer has them.
GLM_ADDED_TOKENS = [
    ("<|endoftext|>", True), ("[MASK]", True), ("[gMASK]", True), ("[sMASK]", True),
    ("<sop>", True), ("<eop>", True), ("<|system|>", True), ("<|user|>", True),
    ("<|assistant|>", True), ("<|observation|>", True), ("<|begin_of_image|>", True),
    ("<|end_of_image|>", True), ("<|begin_of_video|>", True), ("<|end_of_video|>", True),
    ("<|begin_of_audio|>", True), ("<|end_of_audio|>", True),
    ("<|begin_of_transcription|>", True), ("<|end_of_transcription|>", True),
    ("<|code_prefix|>", True), ("<|code_middle|>", True), ("<|code_suffix|>", True),
    ("<think>", False), ("</think>", False), ("<tool_call>", False), ("</tool_call>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<arg_key>", False),
    ("</arg_key>", False), ("<arg_value>", False), ("</arg_value>", False),
    ("/nothink", True), ("<|begin_of_box|>", True), ("<|end_of_box|>", True),
    ("<|image|>", True), ("<|video|>", True),
]

BPE_VOCAB = 3000
MODEL_VOCAB = 3072          # embedding rows padded past the tokenizer, as the real 151552
TOPK = 8
GREEDY_TOKENS = 32


def check_versions():
    import importlib.metadata as md
    bad = []
    for name, want in PINNED.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have != want:
            bad.append(f"{name} {have} (pinned {want})")
    if bad:
        print("warning: versions differ from the pinned ones: " + ", ".join(bad),
              file=sys.stderr)


# --------------------------------------------------------------------------
# corpus

def stdlib_code(rng, budget):
    import sysconfig
    libdir = sysconfig.get_paths()["stdlib"]
    names = ["textwrap.py", "json/decoder.py", "json/encoder.py", "heapq.py",
             "bisect.py", "shlex.py", "fnmatch.py", "colorsys.py", "base64.py",
             "string.py", "difflib.py", "statistics.py"]
    out, used = [], 0
    for n in names:
        p = os.path.join(libdir, n)
        if not os.path.exists(p):
            continue
        src = open(p, encoding="utf-8").read()
        lines = src.splitlines(keepends=True)
        i = 0
        while i < len(lines) and used < budget:
            k = rng.randint(8, 40)
            doc = "".join(lines[i:i + k])
            i += k
            if doc.strip():
                out.append(doc)
                used += len(doc.encode())
    # C-like and JSON-like snippets, with tabs and long indentation runs
    for j in range(40):
        doc = ("static int\nglm_%d(const char *s, size_t n)\n{\n\tif (n > %d) {\n"
               "\t\treturn -1;\n\t}\n        /* aligned   comment\t*/\n"
               "    return (int) s[n - 1] * 0x%x;\n}\n" % (j, j * 37, j * 4099))
        out.append(doc)
        out.append(json.dumps({"id": j, "name": "item-%d" % j, "tags": ["a", "b"],
                               "price": j * 1.25, "ok": j % 2 == 0}, indent=2))
    return out


def english(rng, budget):
    from pydoc_data import topics
    keys = sorted(topics.topics)
    rng.shuffle(keys)
    out, used = [], 0
    for k in keys:
        text = topics.topics[k]
        paras = [p for p in text.split("\n\n") if p.strip()]
        for p in paras[:3]:
            out.append(p)
            used += len(p.encode())
        if used >= budget:
            break
    return out


def chinese(rng, budget):
    import jieba
    dict_path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    words = []
    with open(dict_path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and int(parts[1]) > 2000:
                words.append(parts[0])
    punct = ["，", "。", "、", "；", "：", "？", "！", "“", "”", "（", "）", "《", "》"]
    out, used = [], 0
    while used < budget:
        n = rng.randint(8, 60)
        s = ""
        for _ in range(n):
            s += rng.choice(words)
            r = rng.random()
            if r < 0.15:
                s += rng.choice(punct)
            elif r < 0.2:
                s += " " + str(rng.randint(0, 99999)) + " "
            elif r < 0.24:
                s += " GLM-4.5 "
        s += "。"
        out.append(s)
        used += len(s.encode())
    return out


def emoji_and_edges(rng, budget):
    emoji = [chr(c) for c in list(range(0x1F600, 0x1F650)) + list(range(0x1F300, 0x1F330))
             + list(range(0x1F900, 0x1F930))]
    zwj = ["\U0001F468\u200D\U0001F469\u200D\U0001F467", "\U0001F3F3\uFE0F\u200D\U0001F308",
           "\U0001F44D\U0001F3FD", "\U0001F1E8\U0001F1F3", "\U0001F1FA\U0001F1F8", "\u2764\uFE0F"]
    spaces = ["\u00a0", "\u2002", "\u2003", "\u2009", "\u200a", "\u3000", "\u0085",
              "\u1680", "\u2028", "\u2029", "\u202f", "\u205f", "\ufeff", "\u200b",
              "\u180e", "\t", "\x0b", "\x0c", "\r", "\r\n", "\n\n\n"]
    scripts = ["Привет, мир! Съешь же ещё этих мягких французских булок.",
               "مرحبا بالعالم، هذا نص عربي.", "こんにちは世界、カタカナとひらがな。",
               "안녕하세요 세계", "Ελληνικά γράμματα αβγδ", "naïve café résumé Ångström",
               "e\u0301 a\u0308 combining marks", "ＦＵＬＬＷＩＤＴＨ　１２３", "ℌ𝔢𝔩𝔩𝔬 𝟙𝟚𝟛 ½ ⅷ",
               "हिन्दी देवनागरी", "ไทย ภาษา", "עברית טקסט"]
    specials = [t for t, _ in GLM_ADDED_TOKENS]
    out, used = [], 0
    while used < budget:
        parts = []
        for _ in range(rng.randint(5, 25)):
            r = rng.random()
            if r < 0.2:
                parts.append("".join(rng.choice(emoji) for _ in range(rng.randint(1, 4))))
            elif r < 0.28:
                parts.append(rng.choice(zwj))
            elif r < 0.4:
                parts.append(rng.choice(spaces) * rng.randint(1, 6))
            elif r < 0.5:
                parts.append(" " * rng.randint(1, 40))
            elif r < 0.58:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 18))))
            elif r < 0.62:
                parts.append("0" * rng.randint(5, 30))
            elif r < 0.72:
                parts.append(rng.choice(scripts))
            elif r < 0.82:
                # special-token text inside user text, whole and broken
                t = rng.choice(specials)
                if rng.random() < 0.3:
                    t = t[:rng.randint(1, len(t) - 1)]
                parts.append(t)
            elif r < 0.88:
                parts.append(rng.choice(["'s", "'T", "'re", "'VE", "'m", "'ll", "'D",
                                         "don't", "I'M", "it's"]))
            else:
                parts.append(rng.choice(["Hello", " world", "!!!", "...", "--", "\\n",
                                         "$$x^2$$", "<div>", "</div>", "http://a.b/c?d=e",
                                         "a\u00adb", "\x00\x01\x7f"]))
        doc = "".join(parts)
        out.append(doc)
        used += len(doc.encode())
    return out


def build_corpus(seed):
    rng = random.Random(seed)
    docs = []
    docs += stdlib_code(rng, 60000)
    docs += english(rng, 60000)
    docs += chinese(rng, 60000)
    docs += emoji_and_edges(rng, 50000)
    # a few long runs that stress the BPE merge loop
    docs.append(" " * 5000)
    docs.append("\n" * 300 + "\t" * 300)
    docs.append("1234567890" * 300)
    docs.append("a" * 3000)
    docs.append("的" * 1000)
    docs.append("".join(chr(c) for c in range(0x20, 0x2000) if unicodedata.category(chr(c))[0] != "C"))
    rng.shuffle(docs)
    return docs


# --------------------------------------------------------------------------
# tokenizer

def train_tokenizer(train_docs, out_dir):
    from tokenizers import Tokenizer, Regex, AddedToken, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM4_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator(train_docs, trainer=trainer)
    for content, special in GLM_ADDED_TOKENS:
        # special tokens are matched on raw text; the non-special tags are
        # "normalized" added tokens, as add_tokens() makes them
        tok.add_tokens([AddedToken(content, special=special, normalized=not special)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", clean_up_tokenization_spaces=False)
    fast.save_pretrained(out_dir)
    return fast


def token_id(fast, text):
    i = fast.convert_tokens_to_ids(text)
    assert isinstance(i, int) and i >= BPE_VOCAB - 1, text
    return i


def write_tok_reference(fast, docs, path, seed):
    from tokenizers import Tokenizer
    raw = Tokenizer.from_file(os.path.join(os.path.dirname(path), "tokenizer.json"))
    rng = random.Random(seed)
    n_added = len(GLM_ADDED_TOKENS)
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            ids = raw.encode(d, add_special_tokens=False).ids
            assert raw.decode(ids, skip_special_tokens=False) == d
            f.write(json.dumps({"text": d, "ids": ids}, ensure_ascii=False) + "\n")
            total += len(d.encode())
        # decode cases: random id runs (broken UTF-8 sequences included),
        # with and without special tokens
        vocab_total = raw.get_vocab_size(with_added_tokens=True)
        for k in range(300):
            n = rng.randint(1, 40)
            ids = [rng.randrange(0, vocab_total) for _ in range(n)]
            if k % 3 == 0:
                ids = [rng.randrange(BPE_VOCAB - n_added, vocab_total) for _ in range(n)]
            for skip in (False, True):
                f.write(json.dumps({"decode_ids": ids, "skip_special": skip,
                                    "text": raw.decode(ids, skip_special_tokens=skip)},
                                   ensure_ascii=False) + "\n")
    return total


# --------------------------------------------------------------------------
# checkpoints

def randomise_(model, seed):
    """Norm weights, biases and router bias random too, so each one matters."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point():
                continue
            if name.endswith("e_score_correction_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def postprocess_shards(out_dir, extra=None):
    """Keep e_score_correction_bias fp32 (as the real checkpoints) and add
    extra tensors (the MTP layer) to the last shard."""
    import torch
    from safetensors.torch import load_file, save_file
    files = sorted(glob.glob(os.path.join(out_dir, "*.safetensors")))
    index_path = os.path.join(out_dir, "model.safetensors.index.json")
    index = json.load(open(index_path)) if os.path.exists(index_path) else None
    for i, path in enumerate(files):
        sd = load_file(path)
        for k in list(sd):
            if k.endswith("e_score_correction_bias"):
                sd[k] = sd[k].to(torch.float32)
        if extra and i == len(files) - 1:
            for k, v in extra.items():
                sd[k] = v
                if index:
                    index["weight_map"][k] = os.path.basename(path)
        save_file(sd, path, metadata={"format": "pt"})
    if index:
        total = 0
        for path in files:
            for k, v in load_file(path).items():
                total += v.numel() * v.element_size()
        index["metadata"]["total_size"] = total
        json.dump(index, open(index_path, "w"), indent=2, sort_keys=True)


def mtp_layer(cfg, layer, seed):
    """Tensors shaped like GLM-4.5-Air's MTP layer (stored as layer N)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    H, E, I = cfg["hidden_size"], cfg["n_routed_experts"], cfg["moe_intermediate_size"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    p = "model.layers.%d." % layer
    t = {
        p + "enorm.weight": [H], p + "hnorm.weight": [H], p + "eh_proj.weight": [H, 2 * H],
        p + "shared_head.norm.weight": [H], p + "input_layernorm.weight": [H],
        p + "post_attention_layernorm.weight": [H],
        p + "self_attn.q_proj.weight": [q, H], p + "self_attn.q_proj.bias": [q],
        p + "self_attn.k_proj.weight": [kv, H], p + "self_attn.k_proj.bias": [kv],
        p + "self_attn.v_proj.weight": [kv, H], p + "self_attn.v_proj.bias": [kv],
        p + "self_attn.o_proj.weight": [H, q],
        p + "mlp.gate.weight": [E, H],
        p + "mlp.shared_experts.gate_proj.weight": [I, H],
        p + "mlp.shared_experts.up_proj.weight": [I, H],
        p + "mlp.shared_experts.down_proj.weight": [H, I],
    }
    for e in range(E):
        t[p + "mlp.experts.%d.gate_proj.weight" % e] = [I, H]
        t[p + "mlp.experts.%d.up_proj.weight" % e] = [I, H]
        t[p + "mlp.experts.%d.down_proj.weight" % e] = [H, I]
    out = {k: (torch.randn(s, generator=g) * 0.02).to(torch.bfloat16) for k, s in t.items()}
    out[p + "mlp.gate.e_score_correction_bias"] = torch.zeros(E, dtype=torch.float32)
    return out


def rope_to_old_form(out_dir, nested=None):
    """Rewrite config.json's rope_parameters as the hub's original keys."""
    path = os.path.join(out_dir, "config.json")
    cfg = json.load(open(path))
    c = cfg[nested] if nested else cfg
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp["rope_theta"]
    c["partial_rotary_factor"] = rp.get("partial_rotary_factor", 0.5)
    scaling = {"rope_type": rp.get("rope_type", "default")}
    if "mrope_section" in rp:
        scaling["mrope_section"] = rp["mrope_section"]
    c["rope_scaling"] = scaling
    json.dump(cfg, open(path, "w"), indent=2, sort_keys=True)


def text_cfg_common(fast):
    return dict(
        vocab_size=MODEL_VOCAB, hidden_size=64, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, hidden_act="silu",
        max_position_embeddings=4096, rms_norm_eps=1e-5, attention_bias=True,
        tie_word_embeddings=False, initializer_range=0.06,
        pad_token_id=token_id(fast, "<|endoftext|>"),
        eos_token_id=[token_id(fast, "<|endoftext|>"), token_id(fast, "<|user|>"),
                      token_id(fast, "<|observation|>")],
    )


def build_air(fast, out_dir, seed):
    import torch
    from transformers import Glm4MoeConfig, Glm4MoeForCausalLM
    c = text_cfg_common(fast)
    c.update(num_hidden_layers=3, intermediate_size=128, moe_intermediate_size=32,
             n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
             first_k_dense_replace=1, routed_scaling_factor=1.0, n_group=1, topk_group=1,
             norm_topk_prob=True, use_qk_norm=False,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                              "partial_rotary_factor": 0.5})
    torch.manual_seed(seed)
    cfg = Glm4MoeConfig(**c)
    cfg.num_nextn_predict_layers = 1
    model = Glm4MoeForCausalLM(cfg)
    randomise_(model, seed + 1)
    model.to(torch.bfloat16).save_pretrained(out_dir)
    postprocess_shards(out_dir, extra=mtp_layer(c, c["num_hidden_layers"], seed + 2))
    rope_to_old_form(out_dir)


def build_glm45(fast, out_dir, seed):
    import torch
    from transformers import Glm4MoeConfig, Glm4MoeForCausalLM
    c = text_cfg_common(fast)
    c.update(num_hidden_layers=4, intermediate_size=96, moe_intermediate_size=24,
             n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1,
             first_k_dense_replace=2, routed_scaling_factor=2.5, n_group=4, topk_group=2,
             norm_topk_prob=True, use_qk_norm=True,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                              "partial_rotary_factor": 0.5})
    torch.manual_seed(seed)
    model = Glm4MoeForCausalLM(Glm4MoeConfig(**c))
    randomise_(model, seed + 1)
    model.to(torch.bfloat16).save_pretrained(out_dir, max_shard_size="400KB")
    postprocess_shards(out_dir)


def build_glm45v(fast, out_dir, seed):
    import torch
    from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration
    t = text_cfg_common(fast)
    t.update(num_hidden_layers=3, intermediate_size=128, moe_intermediate_size=32,
             n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
             first_k_dense_replace=1, routed_scaling_factor=1.0, n_group=1, topk_group=1,
             norm_topk_prob=True,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                              "partial_rotary_factor": 0.5, "mrope_section": [2, 3, 3]})
    ids = dict(image_token_id=token_id(fast, "<|image|>"),
               video_token_id=token_id(fast, "<|video|>"),
               image_start_token_id=token_id(fast, "<|begin_of_image|>"),
               image_end_token_id=token_id(fast, "<|end_of_image|>"),
               video_start_token_id=token_id(fast, "<|begin_of_video|>"),
               video_end_token_id=token_id(fast, "<|end_of_video|>"))
    t.update(ids)
    v = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=96, out_hidden_size=64,
             patch_size=14, temporal_patch_size=2, spatial_merge_size=2, image_size=56,
             in_channels=3, rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False,
             initializer_range=0.06)
    torch.manual_seed(seed)
    cfg = Glm4vMoeConfig(text_config=t, vision_config=v, **ids)
    model = Glm4vMoeForConditionalGeneration(cfg)
    randomise_(model, seed + 1)
    model.to(torch.bfloat16).save_pretrained(out_dir)
    postprocess_shards(out_dir)


def write_generation_config(fast, out_dir):
    eos = [token_id(fast, "<|endoftext|>"), token_id(fast, "<|user|>"),
           token_id(fast, "<|observation|>")]
    json.dump({"_from_model_config": False, "eos_token_id": eos,
               "pad_token_id": eos[0], "do_sample": True, "temperature": 0.8,
               "top_p": 0.6, "top_k": 2}, open(os.path.join(out_dir, "generation_config.json"), "w"),
              indent=2)


PROMPTS = [
    "Hello",
    "The quick brown fox jumps over the lazy dog.",
    "[gMASK]<sop><|user|>\nWhat is the capital of France?<|assistant|>\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "人工智能是计算机科学的一个分支，它企图了解智能的实质。",
    "Emoji 😀🎉 and numbers 1234567 mixed     with spaces\t\ttabs.",
    "<|system|>\nYou are a helpful assistant.<|user|>\n<think>reasoning</think> tool call: "
    "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Beijing</arg_value>\n</tool_call>",
    ("In the beginning the Universe was created. This has made a lot of people very angry "
     "and been widely regarded as a bad move. " * 6),
    "x",
    "Привет, мир! こんにちは 안녕하세요 مرحبا",
]


def write_reference(fixture, out_dir, model_cls):
    import torch
    from transformers import AutoTokenizer, GenerationConfig
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = model_cls.from_pretrained(out_dir, dtype=torch.float32)
    model.eval()
    gen = GenerationConfig.from_pretrained(out_dir)
    ref = {"fixture": fixture, "topk": TOPK, "generator": "transformers %s, torch %s, fp32 from bf16 weights"
           % (__import__("transformers").__version__, torch.__version__), "prompts": []}
    for text in PROMPTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids=x).logits[0].float()
            out = model.generate(x, max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                 eos_token_id=gen.eos_token_id, pad_token_id=gen.pad_token_id,
                                 output_logits=True, return_dict_in_generate=True,
                                 temperature=None, top_p=None, top_k=None)
        new = out.sequences[0, len(ids):].tolist()
        step_logits = [s[0].float() for s in out.logits]
        tv, ti = logits.topk(TOPK, dim=-1)
        sv, si = zip(*[s.topk(TOPK) for s in step_logits]) if step_logits else ((), ())
        ref["prompts"].append({
            "text": text, "ids": ids,
            "topk_ids": ti.tolist(), "topk_logits": [[float("%.7g" % v) for v in r] for r in tv.tolist()],
            "last_logits": [float("%.7g" % v) for v in logits[-1].tolist()],
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "step_topk_ids": [s.tolist() for s in si],
            "step_topk_logits": [[float("%.7g" % v) for v in s.tolist()] for s in sv],
        })
    json.dump(ref, open(os.path.join(out_dir, "reference.json"), "w"), ensure_ascii=False)
    gaps = []
    for p in ref["prompts"]:
        for row in p["step_topk_logits"]:
            gaps.append(row[0] - row[1])
    print("%s: %d prompts, min top1-top2 logit gap over greedy steps %.2e"
          % (fixture, len(PROMPTS), min(gaps) if gaps else 0.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "fixtures"))
    ap.add_argument("--seed", type=int, default=4545)
    ap.add_argument("--only", choices=["tokenizer", "models"], default=None)
    args = ap.parse_args()
    check_versions()
    out = os.path.abspath(args.out)
    tok_dir = os.path.join(out, "tokenizer")

    if args.only in (None, "tokenizer"):
        docs = build_corpus(args.seed)
        half = len(docs) // 2
        os.makedirs(tok_dir, exist_ok=True)
        # train on one half plus the other half's code: the test corpus holds
        # text the tokenizer has and has not seen
        fast = train_tokenizer(docs[:half], tok_dir)
        n = write_tok_reference(fast, docs, os.path.join(tok_dir, "tok_reference.jsonl"), args.seed)
        print("tokenizer: vocab %d (+%d added), corpus %d bytes in %d documents"
              % (BPE_VOCAB, len(GLM_ADDED_TOKENS), n, len(docs)))

    if args.only in (None, "models"):
        from transformers import AutoTokenizer, Glm4MoeForCausalLM, Glm4vMoeForConditionalGeneration
        fast = AutoTokenizer.from_pretrained(tok_dir)
        builds = [("glm45-air-tiny", build_air, Glm4MoeForCausalLM),
                  ("glm45-tiny", build_glm45, Glm4MoeForCausalLM),
                  ("glm45v-tiny", build_glm45v, Glm4vMoeForConditionalGeneration)]
        for i, (name, build, cls) in enumerate(builds):
            d = os.path.join(out, name)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            build(fast, d, args.seed + 100 * (i + 1))
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(tok_dir, f), d)
            write_generation_config(fast, d)
            write_reference(name, d, cls)


if __name__ == "__main__":
    main()
