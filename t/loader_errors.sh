#!/bin/sh
# loader_errors.sh ENGINE: damaged checkpoints must give one clear line, exit 1,
# and never crash or trip the sanitizers (run it with the ASan build).
# Each case copies a good fixture, breaks one thing, and runs `generate`.
set -u
ENGINE=${1:-build/asan/glm-engine}
FIX=$(cd "$(dirname "$0")/fixtures" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pass=0
fail=0

# case NAME FIXTURE EXPECTED-SUBSTRING BREAK-COMMAND...
case_() {
    name=$1; fixture=$2; want=$3; shift 3
    d="$WORK/$name"
    rm -rf "$d"; cp -r "$FIX/$fixture" "$d"; chmod -R u+w "$d"
    (cd "$d" && eval "$@")
    ASAN_OPTIONS=detect_leaks=1 "$ENGINE" generate --model "$d" --prompt hi \
        --max-tokens 1 >"$WORK/out" 2>"$WORK/err"
    rc=$?
    lines=$(wc -l <"$WORK/err")
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "^glm-engine: error: " "$WORK/err" \
        && grep -qF -- "$want" "$WORK/err" && ! grep -q Sanitizer "$WORK/err"; then
        pass=$((pass + 1))
        printf 'ok    %-26s %s\n' "$name" "$(cat "$WORK/err")"
    else
        fail=$((fail + 1))
        printf 'FAIL  %-26s exit %d, %d stderr lines, wanted "%s":\n' "$name" "$rc" "$lines" "$want"
        sed 's/^/      /' "$WORK/err" | head -20
    fi
}

# the originals must load (else every case below proves nothing)
for fixture in glm45-air-tiny glm45-air-tiny-fp8-channel; do
    if "$ENGINE" inspect --model "$FIX/$fixture" >/dev/null 2>"$WORK/err"; then
        pass=$((pass + 1)); echo "ok    intact $fixture loads"
    else
        fail=$((fail + 1)); echo "FAIL  intact $fixture does not load:"; cat "$WORK/err"
    fi
done

case_ truncated-data glm45-air-tiny "model.safetensors: truncated" \
    'truncate -s $(( $(stat -c %s model.safetensors) - 1000 )) model.safetensors'
case_ truncated-header glm45-air-tiny "model.safetensors: truncated" \
    'truncate -s 500 model.safetensors'
case_ tiny-file glm45-air-tiny "at least an 8-byte header length" \
    'truncate -s 3 model.safetensors'
case_ empty-file glm45-air-tiny "at least an 8-byte header length" \
    ': > model.safetensors'
case_ missing-tensor glm45-air-tiny "tensor 'model.layers.0.self_attn.k_proj.weight' is missing" \
    "perl -pi -e 's/self_attn\\.k_proj\\.weight/self_attn.k_proj.weighq/g' model.safetensors"
case_ wrong-shape glm45-air-tiny "has shape [64, 64], expected [32, 64]" \
    "sed -i 's/\"num_key_value_heads\": 2/\"num_key_value_heads\": 1/' config.json"
case_ bad-json-header glm45-air-tiny "header JSON does not parse" \
    "printf '\"' | dd of=model.safetensors bs=1 seek=20 conv=notrunc 2>/dev/null"
case_ huge-header-length glm45-air-tiny "header length" \
    "printf '\\377\\377\\377\\377' | dd of=model.safetensors bs=1 seek=0 conv=notrunc 2>/dev/null"
case_ unknown-dtype glm45-air-tiny "unsupported dtype" \
    "perl -pi -e 's/\"BF16\"/\"BF17\"/' model.safetensors"
case_ unexpected-tensor glm45-air-tiny "is not part of a Glm4MoeForCausalLM" \
    "sed -i 's/\"num_nextn_predict_layers\": 1/\"num_nextn_predict_layers\": 0/' config.json"
case_ shard-missing glm45-tiny "model-00002-of-00004.safetensors: cannot open" \
    'rm model-00002-of-00004.safetensors'
case_ shard-path-escape glm45-tiny "not a plain *.safetensors file name" \
    "sed -i 's#\"model-00001-of-00004.safetensors\"#\"../model-00001-of-00004.safetensors\"#' model.safetensors.index.json"
case_ index-wrong-shard glm45-tiny "names tensor 'lm_head.weight' in model-00004-of-00004.safetensors" \
    "sed -i 's/\"lm_head.weight\": \"model-00001/\"lm_head.weight\": \"model-00004/' model.safetensors.index.json"
case_ no-weights glm45-air-tiny "no model.safetensors or model.safetensors.index.json" \
    'rm model.safetensors'
case_ no-config glm45-air-tiny "config.json: cannot open" 'rm config.json'
case_ config-not-json glm45-air-tiny "not a JSON object" 'echo "{oops" > config.json'
case_ config-bad-type glm45-air-tiny "\"hidden_size\" must be an integer" \
    "sed -i 's/\"hidden_size\": 64/\"hidden_size\": \"64\"/' config.json"
case_ unknown-arch glm45-air-tiny "is not served" \
    "sed -i 's/Glm4MoeForCausalLM/LlamaForCausalLM/' config.json"

# FP8 (compressed-tensors): the scale tensors and quantization_config
FP8=glm45-air-tiny-fp8-channel
case_ fp8-missing-scale $FP8 "FP8 tensor 'model.layers.0.self_attn.k_proj.weight' has no scale: 'model.layers.0.self_attn.k_proj.weight_scale' is missing" \
    "perl -pi -e 's/layers\\.0\\.self_attn\\.k_proj\\.weight_scale/layers.0.self_attn.k_proj.weight_scalf/g' model.safetensors model.safetensors.index.json"
case_ fp8-scale-shape $FP8 "weight_scale' has shape [128, 1], expected [1] (the per-tensor scale of a [128, 64] weight)" \
    "sed -i 's/\"strategy\": \"channel\"/\"strategy\": \"tensor\"/' config.json"
case_ fp8-block-scale-shape $FP8 "weight_scale' has shape [128, 1], expected [4, 2] (32x32 block scales of a [128, 64] weight)" \
    "sed -i 's/\"strategy\": \"channel\"/\"strategy\": \"block\", \"block_structure\": [32, 32]/' config.json"
case_ fp8-unknown-strategy $FP8 "weights: strategy \"tensor_group\" is not supported (tensor, channel or block)" \
    "sed -i 's/\"strategy\": \"channel\"/\"strategy\": \"tensor_group\"/' config.json"
case_ fp8-ignored-but-fp8 $FP8 "is F8_E4M3, but quantization_config's ignore entry \"model.layers.0.self_attn.k_proj\" keeps module 'model.layers.0.self_attn.k_proj' unquantized" \
    "sed -i 's/\"ignore\": \[/\"ignore\": [\"model.layers.0.self_attn.k_proj\", /' config.json"
case_ fp8-no-quant-config $FP8 "tensor 'model.layers.0.self_attn.q_proj.weight' is F8_E4M3, but config.json has no quantization_config" \
    "sed -i 's/\"quantization_config\"/\"quantization_config_removed\"/' config.json"
case_ fp8-untargeted $FP8 "is F8_E4M3, but no quantization_config group targets module 'model.layers.0.self_attn.q_proj'" \
    "sed -i 's/\"Linear\"/\"re:.*experts.*\"/' config.json"
case_ fp8-e5m2 $FP8 "unsupported dtype 'F8_E5M2' (FP8 checkpoints must store weights as F8_E4M3" \
    "perl -pi -e 's/F8_E4M3/F8_E5M2/' model.safetensors"
case_ fp8-int4 $FP8 "only 8-bit float (FP8 E4M3) quantization is supported" \
    "sed -i 's/\"num_bits\": 8/\"num_bits\": 4/' config.json"

echo "loader errors: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
