#!/bin/sh
# build.sh: builds build/fuzz/fuzz_template and build/fuzz/fuzz_request
# (libFuzzer + ASan + UBSan) from the interpreter's sources.  Needs clang with libFuzzer (Debian: apt-get install
# -y clang libclang-rt-14-dev).  Run from anywhere.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
mkdir -p build/fuzz
# `build.sh media`: only the media decoder harness (make fuzz-media)
if [ "${1:-}" = media ]; then
    MEDIA_PKGS="libjpeg libpng libwebp libwebpdemux zlib libavformat libavcodec libswscale libavutil"
    # shellcheck disable=SC2046,SC2086
    ${CLANG:-clang} -std=c11 -O1 -g -D_GNU_SOURCE -Iengine $(pkg-config --cflags $MEDIA_PKGS) \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -fno-omit-frame-pointer \
        t/fuzz/fuzz_media.c engine/media/media_decode.c engine/media/media_exif.c engine/media/media_jpeg.c \
        engine/media/media_png.c engine/media/media_webp.c engine/media/media_gif.c engine/media/media_bmp.c \
        engine/media/media_video.c engine/util/util.c \
        -o build/fuzz/fuzz_media $(pkg-config --libs $MEDIA_PKGS) -lm -lpthread
    # seeds: every fixture, behind the byte that picks image (0) or video (1)
    mkdir -p build/fuzz/media_seeds
    for f in t/fixtures/media/*.*; do
        case "$f" in
        *.mp4|*.webm|*.mkv|*.avi) sel='\001' ;;
        *) sel='\000' ;;
        esac
        { printf "$sel"; cat "$f"; } >"build/fuzz/media_seeds/$(basename "$f")"
    done
    { printf '\001'; cat t/fixtures/media/gif_animated.gif; } >build/fuzz/media_seeds/gif_as_video
    echo "built build/fuzz/fuzz_media; seeds in build/fuzz/media_seeds"
    exit 0
fi
${CLANG:-clang} -std=c11 -O1 -g -D_GNU_SOURCE -Iengine \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer \
    t/fuzz/fuzz_template.c engine/text/jinja_parse.c engine/text/jinja_eval.c engine/text/jinja_value.c \
    engine/text/jinja_builtins.c engine/text/jinja_pystr.c engine/text/chat_template.c \
    engine/util/util.c \
    -o build/fuzz/fuzz_template -lyajl -lm
${CLANG:-clang} -std=c11 -O1 -g -D_GNU_SOURCE -Iengine \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer \
    t/fuzz/fuzz_request.c engine/text/jinja_parse.c engine/text/jinja_eval.c engine/text/jinja_value.c \
    engine/text/jinja_builtins.c engine/text/jinja_pystr.c engine/text/chat_template.c \
    engine/util/util.c \
    -o build/fuzz/fuzz_request -lyajl -lm
# seeds: the template corpus and the test checkpoints' templates (copied into
# build/, never into the repository)
mkdir -p build/fuzz/seeds
for f in ../shared/chat-templates/*.jinja t/fixtures/*/chat_template.jinja; do
    [ -f "$f" ] && cp "$f" "build/fuzz/seeds/$(echo "$f" | tr '/' '_')"
done
# request seeds: the benchmark's 20-turn request and a few small ones
mkdir -p build/fuzz/request_seeds
cp t/bench/bench_templates_request.json build/fuzz/request_seeds/bench.json
printf '%s' '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"hi"}]}],"chat_template_kwargs":{"enable_thinking":false}}' >build/fuzz/request_seeds/media.json
printf '%s' '{"messages":[{"role":"user","content":"w"},{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"a\": [1, 2.5e300, null]}"}}]},{"role":"tool","content":"r"}],"tools":[{"type":"function","function":{"name":"f"}}]}' >build/fuzz/request_seeds/tools.json
printf '%s' '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"add_generation_prompt":false,"continue_final_message":true}' >build/fuzz/request_seeds/continue.json
echo "built build/fuzz/fuzz_template and build/fuzz/fuzz_request; seeds in build/fuzz/seeds, build/fuzz/request_seeds"
