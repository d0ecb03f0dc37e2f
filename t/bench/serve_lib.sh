# serve_lib.sh: sourced by the served benchmarks (bench_overhead.sh,
# bench_flood.sh): serves MODEL through nginx with conf.d/run.conf.in, as
# `make run` does, on PORT under WORK, with access logs off.
#   serve_start SEQS [engine options...]   engine (--max-num-seqs SEQS,
#       --threads THREADS), then nginx; returns once every worker answers
#       /health 200.  MAX_BODY (default 16m) is client_max_body_size;
#       SERVE_LOCATIONS, when set, is added to the server block.
#   serve_stop                             stops both
# Needs ROOT, MODEL, WORK, PORT, THREADS; sets ENG and NGX.

serve_start() {
    _seqs=$1; shift
    mkdir -p "$WORK/logs" "$WORK/tmp"
    if [ "$(id -u)" -eq 0 ]; then
        _user="user nobody nogroup;"; _group="--socket-group nogroup"
    else
        _user=""; _group=""
    fi
    sed -e "s|@PORT@|$PORT|g" -e "s|@SOCK@|$WORK/engine.sock|g" -e "s|@RUN@|$WORK|g" \
        -e "s|@MODULE@|$ROOT/build/nginx/ngx_http_glm_module.so|g" -e "s|@USER@|$_user|g" \
        -e "s|@MAX_BODY@|${MAX_BODY:-16m}|g" \
        -e "s|access_log .*;|access_log off;|" "$ROOT/conf.d/run.conf.in" |
    awk -v extra="${SERVE_LOCATIONS:-}" \
        '/location = \/health/ && extra != "" { print "        " extra } { print }' \
        >"$WORK/nginx.conf"
    # shellcheck disable=SC2086
    "$ROOT/build/glm-engine" serve --model "$MODEL" --socket "$WORK/engine.sock" \
        --served-model-name bench --max-num-seqs "$_seqs" --threads "$THREADS" $_group \
        "$@" 2>"$WORK/engine.log" &
    ENG=$!
    while [ ! -S "$WORK/engine.sock" ]; do sleep 0.1; done
    /usr/sbin/nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/logs/error.log" &
    NGX=$!
    _ok=0; _i=0
    while [ $_ok -lt 4 ] && [ $_i -lt 200 ]; do    # every worker attached
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ]
        then _ok=$((_ok + 1)); else _ok=0; sleep 0.05; fi
        _i=$((_i + 1))
    done
}

serve_stop() {
    kill $NGX $ENG 2>/dev/null; wait $NGX $ENG 2>/dev/null || true
    NGX=; ENG=
    rm -f "$WORK/engine.sock"
}
