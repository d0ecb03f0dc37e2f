#!/bin/bash
# build.sh BUILD_DIR: builds ngx_http_glm_module.so against Debian's nginx-dev
# (the recipe of NGINX.md 1.2), so that the stock /usr/sbin/nginx loads it.
# configure runs only when BUILD_DIR/Makefile is missing, older than the
# module's `config`, or made with other flags; make itself is incremental.
# The .so ends up at BUILD_DIR/ngx_http_glm_module.so.
#
# NGX_GLM_CC_OPT / NGX_GLM_LD_OPT replace the compile and link flags, e.g.
# for a sanitizer build that nginx loads with LD_PRELOAD=libasan.so:
#   NGX_GLM_CC_OPT="-g -O1 -fPIC -fsanitize=address -fno-omit-frame-pointer"
#   NGX_GLM_LD_OPT="-fPIC -fsanitize=address"
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
build=$(cd "$1" && pwd)
src=/usr/share/nginx/src

if [ ! -f "$src/conf_flags" ]; then
    echo "$0: $src/conf_flags not found: apt-get install nginx-dev" >&2
    exit 1
fi

cc_opt=${NGX_GLM_CC_OPT:-"-g -O2 -fPIC"}
ld_opt=${NGX_GLM_LD_OPT:-"-fPIC"}
flags="$cc_opt | $ld_opt"

if [ ! -f "$build/Makefile" ] || [ "$top/config" -nt "$build/Makefile" ] \
   || [ "$(cat "$build/glm-flags" 2>/dev/null)" != "$flags" ]
then
    (
        cd "$src"
        . ./conf_flags
        ./configure --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
            "${NGX_CONF_FLAGS[@]}" \
            --add-dynamic-module="$top" --builddir="$build" >"$build/configure.log" 2>&1
    ) || { echo "$0: configure failed, see $build/configure.log" >&2; exit 1; }
    echo "$flags" >"$build/glm-flags"
fi

make -s -f "$build/Makefile" -C "$src" modules
echo "$build/ngx_http_glm_module.so"
