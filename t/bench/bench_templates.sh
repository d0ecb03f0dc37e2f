#!/bin/sh
# bench_templates.sh [TEST_BINARY]: chat-template render speed, ours against
# Python jinja2, same template (the GLM-4.5 template of t/fixtures/glm45-tiny),
# same 20-turn conversation with tools (bench_templates_request.json), same
# run.  Ours: `test_templates --bench` (an optimised build: build/t/
# test_templates by default, made here), which parses the request JSON,
# builds the variables and renders, every time.  jinja2: bench_templates.py,
# template compiled once, variables prepared once, render() timed alone.
#
#   PYTHON   interpreter with jinja2 (default python3; if it cannot import
#            jinja2 the baseline is reported unavailable and we exit 0)
#   BENCH_SECONDS  seconds for the jinja2 side (default 2)
#
# Prints the lines and "template render ratio ours/jinja2 = <x>" (jinja2's
# time per render over ours: above 1 means we are faster; the goal is 20),
# then the same ratio for our whole request path.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-}
PY=${PYTHON:-python3}
SECS=${BENCH_SECONDS:-2}

cd "$ROOT" || exit 1
if [ -z "$BIN" ]; then
    make -s build/t/test_templates >&2 || { echo "bench_templates: build failed" >&2; exit 1; }
    BIN=build/t/test_templates
fi
ours=$("$BIN" --bench 20000) || { echo "bench_templates: $BIN --bench failed" >&2; exit 1; }
echo "$ours"

if ! "$PY" -c 'import jinja2' >/dev/null 2>&1; then
    echo "jinja2: baseline unavailable (python jinja2 not importable with $PY)"
    exit 0
fi
theirs=$("$PY" "$HERE/bench_templates.py" --seconds "$SECS") || {
    echo "bench_templates: bench_templates.py failed" >&2
    exit 1
}
echo "$theirs"

echo "$ours
$theirs" | awk '$1 == "ours:" { o = $2; ob = substr($5, 2) } $1 == "ours-request:" { q = $2 }
    $1 == "jinja2:" { j = $2; jb = substr($5, 2) }
    END { if (ob != jb) print "bench_templates: WARNING: outputs differ in size (" ob " vs " jb " bytes)";
          if (j > 0 && o > 0) printf "template render ratio ours/jinja2 = %.1f\n", j / o;
          else print "template render ratio ours/jinja2 = unavailable";
          if (j > 0 && q > 0) printf "template request ratio ours/jinja2 = %.1f (ours with JSON parse and variables)\n", j / q }'
