#!/bin/sh
# run.sh: what `make run` does.  Installs what is missing (as root; otherwise
# prints the command), builds, and serves MODEL through nginx on
# 127.0.0.1:$PORT in the foreground.  Ctrl-C stops nginx and the engine.
# An engine that dies is started again, after 1 s, then 2, 4... up to 30 s
# while it keeps dying (back to 1 s once one has run for a minute); nginx
# reconnects to it by itself.  $RUN_DIR/engine.pid holds the engine's pid.
#
#   MODEL   checkpoint directory (default: the embedded tiny random-weight
#           checkpoint t/fixtures/glm45-air-tiny, which answers noise)
#   PORT    listen port (default 8080)
#   SUBMIT_RING_MB  the engine's request ring per worker, MiB (default 64);
#           nginx's client_max_body_size is half of it, so that a body fits
#           whole with room to spare
#   RUN_DIR where the socket, nginx.conf, logs and pid files go (default
#           build/run)
#   ENGINE_USER  as root: the user the engine drops to (default glm, made
#           if missing)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-8080}
MODEL=${MODEL:-$ROOT/t/fixtures/glm45-air-tiny}
case $MODEL in /*) ;; *) MODEL=$(cd "$MODEL" && pwd) ;; esac
NAME=${SERVED_NAME:-$(basename "$MODEL")}
RUN=${RUN_DIR:-$ROOT/build/run}
case $RUN in /*) ;; *) RUN=$PWD/$RUN ;; esac
SUBMIT_RING_MB=${SUBMIT_RING_MB:-64}

need=""
for p in nginx nginx-dev libyajl-dev libpcre2-dev build-essential pkg-config \
         libjpeg62-turbo-dev libpng-dev libwebp-dev zlib1g-dev libavformat-dev \
         libavcodec-dev libswscale-dev libavutil-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "run: installing$need"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$need >/dev/null
    else
        echo "run: missing packages; run:  sudo apt-get install -y$need" >&2
        exit 1
    fi
fi

make -C "$ROOT" -s all module

mkdir -p "$RUN/logs" "$RUN/tmp"
SOCK=$RUN/engine.sock
if [ "$(id -u)" -eq 0 ]; then
    # nginx workers drop to nobody:nogroup; the socket admits that group only
    # (the engine checks each peer's credentials too), and the engine drops
    # to a user of its own, $ENGINE_USER (default glm as in
    # glm-engine.service; made here if missing, nobody if it cannot be),
    # once the socket and the model are open
    USER_LINE="user nobody nogroup;"
    ENGINE_USER=${ENGINE_USER:-glm}
    id -u "$ENGINE_USER" >/dev/null 2>&1 \
        || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin \
               "$ENGINE_USER" \
        || ENGINE_USER=nobody
    GROUP_OPT="--socket-group nogroup --user $ENGINE_USER"
else
    USER_LINE=""
    GROUP_OPT=""
fi
sed -e "s|@PORT@|$PORT|g" -e "s|@SOCK@|$SOCK|g" -e "s|@RUN@|$RUN|g" \
    -e "s|@MODULE@|$ROOT/build/nginx/ngx_http_glm_module.so|g" \
    -e "s|@MAX_BODY@|$((SUBMIT_RING_MB / 2))m|g" \
    -e "s|@USER@|$USER_LINE|g" "$ROOT/conf.d/run.conf.in" >"$RUN/nginx.conf"

ENGINE=
start_engine() {
    "$ROOT/build/glm-engine" serve --model "$MODEL" --socket "$SOCK" \
        --served-model-name "$NAME" --submit-ring-size "${SUBMIT_RING_MB}m" \
        $GROUP_OPT &
    ENGINE=$!
    echo "$ENGINE" >"$RUN/engine.pid"
}

# how a child ended, from the status `wait` gave
how() {
    if [ "$1" -gt 128 ]; then
        echo "was killed by SIG$(kill -l "$1")"
    else
        echo "exited with status $1"
    fi
}

# sleeps in the background, so that a signal's trap runs at once
SLEEPER=
pause() {
    sleep "$1" &
    SLEEPER=$!
    wait "$SLEEPER" || :
    SLEEPER=
}

start_engine
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 600 ]; do
    if ! kill -0 $ENGINE 2>/dev/null; then echo "run: the engine did not start" >&2; exit 1; fi
    sleep 0.1; i=$((i + 1))
done
/usr/sbin/nginx -p "$RUN" -c "$RUN/nginx.conf" -e "$RUN/logs/error.log" &
NGINX=$!

# Ctrl-C (INT) or TERM: stop both, restart nothing
stopping=0
stop() {
    stopping=1
    kill $NGINX $ENGINE $SLEEPER 2>/dev/null || :
}
trap stop INT TERM
sleep 0.5
cat <<MSG

ngx_glm: serving '$NAME' on http://127.0.0.1:$PORT  (Ctrl-C stops)
  curl -N localhost:$PORT/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"messages":[{"role":"user","content":"hi"}],"stream":true}'
MSG

delay=1
up=0
while [ $stopping -eq 0 ]; do
    pause 1
    [ $stopping -eq 0 ] || break
    up=$((up + 1))
    if ! kill -0 $NGINX 2>/dev/null; then
        wait $NGINX && st=0 || st=$?
        echo "run: nginx $(how $st); stopping the engine" >&2
        kill $ENGINE 2>/dev/null || :
        wait $ENGINE || :
        exit 1
    fi
    kill -0 $ENGINE 2>/dev/null && continue
    wait $ENGINE && st=0 || st=$?
    # one that served for a minute starts again quickly
    [ $up -lt 60 ] || delay=1
    echo "run: the engine (pid $ENGINE) $(how $st); restarting it in $delay s" >&2
    ENGINE=
    pause $delay
    [ $stopping -eq 0 ] || break
    start_engine
    echo "run: engine restarted (pid $ENGINE)" >&2
    up=0
    delay=$((delay * 2))
    [ $delay -le 30 ] || delay=30
done
wait $NGINX $ENGINE 2>/dev/null || :
rm -f "$RUN/engine.pid"
