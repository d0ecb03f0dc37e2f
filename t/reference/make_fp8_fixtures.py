#!/usr/bin/env python3
"""
make_fp8_fixtures.py: FP8 (compressed-tensors) versions of the tiny GLM-4.5-Air
checkpoint, and the transformers references `make reference-check` and
test_fp8 compare the C engine's dequantization against.

What it writes (under t/fixtures/, from the committed tiny checkpoints):
  glm45-air-tiny-fp8-<scheme>/   the checkpoint quantized by llm-compressor's
        model_free_ptq (it works on the safetensors files, so the routed experts
        stay per-expert tensors as in the real GLM FP8 files), FP8 E4M3 weights
        with a `<module>.weight_scale` beside each, config.json carrying the
        `quantization_config` llm-compressor writes; tokenizer, chat template and
        generation config copied from the base fixture.  Schemes:
          tensor      one scale per weight, shape [1]
          channel     one scale per output row, [out, 1]; activations dynamic
                      per token (llm-compressor's FP8_DYNAMIC, which is what the
                      evidence says GLM-4.5-Air-FP8 uses)
          block       FP8_BLOCK: 128x128 blocks, [ceil(out/128), ceil(in/128)];
                      every tiny matrix is one partial block
          block48x40  48x40 blocks: several blocks per matrix and ragged last
                      blocks in both directions (64 = 48 + 16, 128 = 3 x 40 + 8)
        Every scheme keeps lm_head, the embedding and the MoE routers
        (`mlp.gate`) in BF16 through `ignore`: the channel fixture lists the
        routers by name, as the real files do, the others with a `re:` regex.
  <fixture>/reference.json       make_fixtures.write_reference's format and
        prompts: transformers' fp32 outputs with the checkpoint dequantized at
        load time (CompressedTensorsConfig(dequantize=True), so the model is
        dense and activations are not quantized; the input_activations scheme is
        a kernel matter the CPU backend also ignores)
  glm45v-tiny-fp8-channel/       the same from t/fixtures/glm45v-tiny (channel
        scheme), the vision tower's Linear layers FP8 except attn.qkv, kept
        BF16 as GLM-4.5V-FP8 keeps it; config.json's ignore list names those
        qkv layers as the real file does, with vLLM's module names
        (visual.blocks.N.attn.qkv_proj), which match no checkpoint module.
        Besides reference.json, vl_reference.json from
        make_vision_fixtures.model_references (images and a video).
  fp8/e4m3_to_f32.txt            torch's float8_e4m3fn -> float32 for all 256 bit
        patterns ("0xNN 0xXXXXXXXX value" per line, the fp32 bits exact, NaN
        included), for test_fp8's check of glm_fp8_e4m3_to_f32
  <fixture>/fp8_dequant.json     for every FP8 weight, a hash of the fp32 values
        transformers holds after that dequantization (FNV-1a 64 over the bytes
        of the little-endian fp32 values) and their sum: test_fp8 checks the engine's
        glm_tensor_to_f32 against them bit for bit.

What transformers 5.23 holds (found here, mirrored by engine/model/safetensors.c):
  - dense modules go through compressed-tensors' dequantize, which computes
    fp8.to(scale.dtype) * scale: with BF16 scales the product is rounded to
    bf16, then widened to fp32;
  - the routed experts (fused at load time) are dequantized by transformers'
    own FP8 path, (fp8.float() * scale.float()).to(fp32): no bf16 rounding.
  That path multiplies with plain broadcasting, which fails for block scales
  of more than one block (transformers 5.23 cannot load such a MoE
  checkpoint: "The size of tensor a (64) must match the size of tensor b
  (2)"); patch_expert_block_scales() below expands each block scale to the
  weight's shape first, which is the same fp32 product the path computes for
  channel and tensor scales.

llm-compressor 0.14.0.1 declares torch<=2.14, transformers<=5.17 and
compressed-tensors==0.19.0; model_free_ptq does not use transformers and runs
with the pinned torch 2.15 / compressed-tensors 0.20.0 (install it with
--no-deps, see requirements-llmcompressor.txt).  One workaround: for block
sizes that do not divide the weight, compressed-tensors pads, quantizes and
slices back, leaving non-contiguous tensors that safetensors refuses to save;
the save below makes them contiguous (values unchanged).

Reproducibility: model_free_ptq is deterministic (no calibration data for
these data-free schemes), so a rerun with the pinned versions rewrites the
same bytes.

Run:  ~/venv-ref/bin/pip install --no-deps -r t/reference/requirements-llmcompressor.txt
      ~/venv-ref/bin/python t/reference/make_fp8_fixtures.py
"""

import argparse
import json
import os
import re
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402  (write_reference, PROMPTS, pinned versions)

PINNED = dict(make_fixtures.PINNED, **{
    "compressed-tensors": "0.20.0",
    "llmcompressor": "0.14.0.1",
})

ACT_TOKEN = dict(num_bits=8, type="float", strategy="token", symmetric=True, dynamic=True)


def schemes():
    """name -> (weights args, input activation args, ignore list)."""
    from compressed_tensors.quantization import preset_name_to_scheme
    w8 = dict(num_bits=8, type="float", symmetric=True, dynamic=False)
    regex_ignore = ["lm_head", "model.embed_tokens", "re:.*mlp\\.gate$"]
    # the real checkpoints list each router by name; the tiny base has layers
    # 1 and 2 MoE, and layer 3 is its MTP layer (also MoE)
    named_ignore = ["lm_head", "model.embed_tokens"] + \
        ["model.layers.%d.mlp.gate" % l for l in (1, 2, 3)]
    dyn = preset_name_to_scheme("FP8_DYNAMIC", ["Linear"])
    blk = preset_name_to_scheme("FP8_BLOCK", ["Linear"])
    return {
        "tensor": (dict(w8, strategy="tensor"), ACT_TOKEN, regex_ignore),
        "channel": (dyn.weights.model_dump(), dyn.input_activations.model_dump(), named_ignore),
        "block": (blk.weights.model_dump(), blk.input_activations.model_dump(), regex_ignore),
        "block48x40": (dict(w8, strategy="block", block_structure=[48, 40]),
                       blk.input_activations.model_dump(), regex_ignore),
    }


def quantize(src, out, wargs, aargs, ignore):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    import llmcompressor.entrypoints.model_free as model_free

    save = model_free.save_file
    model_free.save_file = lambda tensors, path, *a, **k: save(
        {n: t.contiguous() for n, t in tensors.items()}, path, *a, **k)
    try:
        scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**wargs),
                                    input_activations=QuantizationArgs(**aargs))
        model_free.model_free_ptq(src, out, scheme=scheme, ignore=ignore, device="cpu")
    finally:
        model_free.save_file = save
    # the base fixture's config.json layout (sorted, indent 2)
    path = os.path.join(out, "config.json")
    cfg = json.load(open(path))
    json.dump(cfg, open(path, "w"), indent=2, sort_keys=True)
    os.remove(os.path.join(out, "reference.json"))


def patch_expert_block_scales():
    """transformers 5.23's FP8 expert dequantization broadcasts the scale over
    the weight, which only works for tensor/channel scales: expand block
    scales to the weight's shape first (same fp32 product)."""
    import transformers.integrations.compressed_tensors as tci

    original = tci.CompressedTensorsDequantize.convert
    if getattr(original, "_glm_patched", False):
        return

    def expand(scale, weight, block):
        rows, cols = weight.shape[-2:]
        s = scale.repeat_interleave(block[0], dim=-2).repeat_interleave(block[1], dim=-1)
        return s[..., :rows, :cols]

    def convert(self, input_dict, source_patterns, target_patterns, full_layer_name=None, **kwargs):
        if "weight" not in input_dict and "weight_scale" not in input_dict:
            cfg = self.hf_quantizer.compressor.quantization_config
            wargs = (self.scheme or tci.get_experts_scheme(cfg)).weights
            if wargs.strategy == "block":
                input_dict = dict(input_dict)
                for key in list(input_dict):
                    if "weight_scale" not in key:
                        continue
                    wkey = key.replace(".weight_scale", ".weight")
                    scales, weights = input_dict[key], input_dict[wkey]
                    if isinstance(scales, list):
                        input_dict[key] = [expand(s, w, wargs.block_structure)
                                           for s, w in zip(scales, weights)]
                    else:
                        input_dict[key] = expand(scales, weights, wargs.block_structure)
        return original(self, input_dict, source_patterns, target_patterns,
                        full_layer_name=full_layer_name, **kwargs)

    convert._glm_patched = True
    tci.CompressedTensorsDequantize.convert = convert


def dequantized(class_name):
    """A stand-in for a transformers model class whose from_pretrained loads
    the FP8 checkpoint dequantized (what write_reference and
    make_vision_fixtures call)."""
    import transformers
    cls = getattr(transformers, class_name)
    load = cls.from_pretrained.__func__          # PreTrainedModel's classmethod

    class Dequantized:
        @staticmethod
        def from_pretrained(path, **kwargs):
            from transformers import CompressedTensorsConfig
            return load(cls, path, quantization_config=CompressedTensorsConfig(dequantize=True),
                        **kwargs)

    Dequantized.__name__ = class_name
    return Dequantized


def fnv1a64(t):
    """FNV-1a 64 over the bytes of t as little-endian fp32, row-major."""
    import numpy as np
    h = 0xcbf29ce484222325
    for b in np.ascontiguousarray(t.float().numpy()).astype("<f4").view(np.uint8).ravel().tolist():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


EXPERT = re.compile(r"^(.*\.layers\.(\d+)\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
LAYER = re.compile(r"\.layers\.(\d+)\.")


def write_dequant_reference(out, model_cls):
    """The fp32 values transformers holds for every FP8 weight."""
    import torch
    from safetensors import safe_open
    model = model_cls.from_pretrained(out, dtype=torch.float32)
    params = dict(model.named_parameters())
    cfg = getattr(model.config, "text_config", model.config)
    inter = cfg.moe_intermediate_size
    entries = {}
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        names = sorted(k for k in f.keys() if f.get_slice(k).get_dtype() == "F8_E4M3")
    for name in names:
        layer = LAYER.search(name)
        if layer and not name.startswith("model.visual.") \
                and int(layer.group(1)) >= cfg.num_hidden_layers:
            continue                        # the MTP layer: transformers skips it
        expert = EXPERT.match(name)
        if expert:
            base, e, proj = expert.group(1), int(expert.group(3)), expert.group(4)
            if proj == "down_proj":
                dense = params[base + ".down_proj"][e]
            else:
                gate_up = params[base + ".gate_up_proj"][e]
                dense = gate_up[:inter] if proj == "gate_proj" else gate_up[inter:]
        else:
            dense = params[name]
        entries[name] = {"fnv1a64": fnv1a64(dense.detach()),
                         "sum": float("%.9g" % dense.double().sum().item())}
    json.dump({"hash": "FNV-1a 64 over the bytes of the little-endian fp32 values, row-major",
               "tensors": entries}, open(os.path.join(out, "fp8_dequant.json"), "w"),
              indent=1, sort_keys=True)
    return len(entries)


def write_e4m3_table(fixtures):
    import torch
    d = os.path.join(fixtures, "fp8")
    os.makedirs(d, exist_ok=True)
    values = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    bits = values.view(torch.int32).tolist()
    with open(os.path.join(d, "e4m3_to_f32.txt"), "w") as f:
        f.write("# torch %s: torch.arange(256, dtype=uint8).view(float8_e4m3fn).float()\n"
                "# fp8 bits, fp32 bits, value\n" % torch.__version__)
        for i, (b, v) in enumerate(zip(bits, values.tolist())):
            f.write("0x%02x 0x%08x %r\n" % (i, b & 0xFFFFFFFF, v))


def set_generator(path, fixture):
    """The reference's fixture name, and a generator string saying the weights
    were FP8."""
    import compressed_tensors
    ref = json.load(open(path, encoding="utf-8"))
    ref["fixture"] = fixture
    ref["generator"] = ref["generator"].replace(
        "fp32 from bf16 weights", "compressed-tensors %s, fp32 from the FP8 checkpoint"
        " dequantized at load" % compressed_tensors.__version__)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False)


# What GLM-4.5V-FP8's config.json is known to ignore: the vision qkv layers,
# under vLLM's module names (vLLM PR 22949), which match no checkpoint module;
# the file keeps those weights BF16.
def vision_config_ignore(depth):
    return ["lm_head", "re:.*mlp\\.gate$"] + \
        ["visual.blocks.%d.attn.qkv_proj" % b for b in range(depth)]


def build_vision(fixtures):
    """glm45v-tiny-fp8-channel: the GLM-4.5V layout, channel scales, the vision
    qkv kept BF16; text and image/video references."""
    import transformers
    import make_vision_fixtures
    fixture = "glm45v-tiny-fp8-channel"
    src = os.path.join(fixtures, "glm45v-tiny")
    out = os.path.join(fixtures, fixture)
    depth = json.load(open(os.path.join(src, "config.json")))["vision_config"]["depth"]
    # model_free_ptq matches names, not classes: what it must leave alone is
    # every 2-D weight that is not a Linear one (and norm1/norm2, whose names
    # do not end in "norm"), and the qkv layers the real file keeps BF16
    ignore = ["lm_head", "model.language_model.embed_tokens", "re:.*mlp\\.gate$",
              "model.visual.patch_embed.proj", "model.visual.downsample",
              "model.visual.embeddings.position_embedding", "re:.*\\.norm[12]$",
              "re:model\\.visual\\.blocks\\.\\d+\\.attn\\.qkv$"]
    wargs, aargs, _ = schemes()["channel"]
    shutil.rmtree(out, ignore_errors=True)
    quantize(src, out, wargs, aargs, ignore)
    for name in ("vl_reference.json",):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    # config.json says what the real file says (see vision_config_ignore)
    path = os.path.join(out, "config.json")
    cfg = json.load(open(path))
    cfg["quantization_config"]["ignore"] = vision_config_ignore(depth)
    json.dump(cfg, open(path, "w"), indent=2, sort_keys=True)

    cls = dequantized("Glm4vMoeForConditionalGeneration")
    make_fixtures.write_reference(fixture, out, cls)
    set_generator(os.path.join(out, "reference.json"), fixture)
    # model_references imports the class itself: make its from_pretrained
    # dequantize for the duration
    real = transformers.Glm4vMoeForConditionalGeneration
    assert "from_pretrained" not in real.__dict__
    real.from_pretrained = classmethod(lambda c, path, **kw: cls.from_pretrained(path, **kw))
    try:
        make_vision_fixtures.model_references(out)
    finally:
        del real.from_pretrained
    set_generator(os.path.join(out, "vl_reference.json"), fixture)
    n = write_dequant_reference(out, cls)
    print("%s: %d FP8 weights hashed" % (fixture, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--fixtures", default=os.path.join(here, "..", "fixtures"))
    ap.add_argument("--only", default=None, help="one scheme name, or vision")
    args = ap.parse_args()
    make_fixtures.PINNED.update(PINNED)
    make_fixtures.check_versions()
    patch_expert_block_scales()

    fixtures = os.path.abspath(args.fixtures)
    write_e4m3_table(fixtures)
    src = os.path.join(fixtures, "glm45-air-tiny")
    for name, (wargs, aargs, ignore) in schemes().items():
        if args.only and name != args.only:
            continue
        fixture = "glm45-air-tiny-fp8-" + name
        out = os.path.join(fixtures, fixture)
        shutil.rmtree(out, ignore_errors=True)
        quantize(src, out, wargs, aargs, ignore)
        cls = dequantized("Glm4MoeForCausalLM")
        make_fixtures.write_reference(fixture, out, cls)
        set_generator(os.path.join(out, "reference.json"), fixture)
        n = write_dequant_reference(out, cls)
        print("%s: %d FP8 weights hashed" % (fixture, n))
    if args.only in (None, "vision"):
        build_vision(fixtures)


if __name__ == "__main__":
    main()
