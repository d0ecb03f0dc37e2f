#!/usr/bin/env python3
"""
make_fp8_fixtures.py: FP8 (compressed-tensors) versions of the tiny GLM-4.5-Air
checkpoint, and the transformers references `make reference-check` and
test_fp8 compare the C engine's dequantization against.

What it writes (under t/fixtures/, from the committed t/fixtures/glm45-air-tiny):
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
  fp8/e4m3_to_f32.txt            torch's float8_e4m3fn -> float32 for all 256 bit
        patterns ("0xNN 0xXXXXXXXX value" per line, the fp32 bits exact, NaN
        included), for test_fp8's check of glm_fp8_e4m3_to_f32
  <fixture>/fp8_dequant.json     for every FP8 weight, a hash of the fp32 values
        transformers holds after that dequantization (FNV-1a 64 over the bytes
        of the little-endian fp32 values) and their sum: test_fp8 checks the engine's
        glm_tensor_to_f32 against them bit for bit.

What transformers 5.23 holds (found here, mirrored by engine/safetensors.c):
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


class DequantizedGlm4Moe:
    """write_reference's model class: the FP8 checkpoint dequantized at load."""

    @staticmethod
    def from_pretrained(path, **kwargs):
        from transformers import CompressedTensorsConfig, Glm4MoeForCausalLM
        return Glm4MoeForCausalLM.from_pretrained(
            path, quantization_config=CompressedTensorsConfig(dequantize=True), **kwargs)


def fnv1a64(t):
    """FNV-1a 64 over the bytes of t as little-endian fp32, row-major."""
    import numpy as np
    h = 0xcbf29ce484222325
    for b in np.ascontiguousarray(t.float().numpy()).astype("<f4").view(np.uint8).ravel().tolist():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def write_dequant_reference(out):
    """The fp32 values transformers holds for every FP8 weight."""
    import torch
    from safetensors import safe_open
    model = DequantizedGlm4Moe.from_pretrained(out, dtype=torch.float32)
    params = dict(model.named_parameters())
    cfg = model.config
    inter = cfg.moe_intermediate_size
    entries = {}
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        names = sorted(k for k in f.keys() if f.get_slice(k).get_dtype() == "F8_E4M3")
    for name in names:
        parts = name.split(".")
        layer = int(parts[2])
        if layer >= cfg.num_hidden_layers:
            continue                        # the MTP layer: transformers skips it
        if ".mlp.experts." in name:
            e, proj = int(parts[5]), parts[6]
            base = "model.layers.%d.mlp.experts." % layer
            if proj == "down_proj":
                dense = params[base + "down_proj"][e]
            else:
                gate_up = params[base + "gate_up_proj"][e]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--fixtures", default=os.path.join(here, "..", "fixtures"))
    ap.add_argument("--only", default=None, help="one scheme name")
    args = ap.parse_args()
    make_fixtures.PINNED.update(PINNED)
    make_fixtures.check_versions()
    import compressed_tensors
    import torch
    import transformers
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
        make_fixtures.write_reference(fixture, out, DequantizedGlm4Moe)
        path = os.path.join(out, "reference.json")
        ref = json.load(open(path))
        ref["generator"] = ("transformers %s, torch %s, compressed-tensors %s, fp32 from the FP8"
                            " checkpoint dequantized at load" % (transformers.__version__,
                                                                 torch.__version__,
                                                                 compressed_tensors.__version__))
        json.dump(ref, open(path, "w"), ensure_ascii=False)
        n = write_dequant_reference(out)
        print("%s: %d FP8 weights hashed" % (fixture, n))


if __name__ == "__main__":
    main()
