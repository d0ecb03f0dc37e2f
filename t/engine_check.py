#!/usr/bin/env python3
"""engine_check.py ENGINE RING_CLIENT MODEL_DIR: `glm-engine serve` alone,
driven through the shared-memory ring exactly as an nginx worker drives it
(t/unit/ring_client.c), no nginx involved.  Standard library only.

Checks the OpenAI semantics the engine owns: response and chunk shapes, n>1,
usage, stop strings, seed determinism, greedy output equal to
`glm-engine generate` on the same rendered prompt (itself checked against
transformers), continuous batching of 40 concurrent requests giving the same
greedy output as one at a time, the errors with their status and JSON, and a
clean shutdown with no sanitizer report.

Prefix caching (on by default): requests sharing a long system prompt get
the same answers and the same logprobs (greedy, top 5) from a second engine
started with --no-enable-prefix-caching, and /metrics counts
vllm:prefix_cache_queries (every prompt token of every choice) and
vllm:prefix_cache_hits (per choice, the longest run of full 16-token blocks
computed before, at most prompt_tokens - 1: vLLM's rule, worked out here
from the prompts' ids) on the one, nothing on the other.

Run as root, it also checks isolation (ring.h's Peers and Segments) with
second local users (uids 12345, 12346, which need not exist), through a
second engine started as root with --user nobody: a peer neither allowed
by uid nor in --socket-group is refused; allowed ones (by uid, primary gid,
supplementary group) are served; an allowed peer gets two fds, a read-only
header and its own channel, and nothing more; one pid holds one channel;
an allowed peer's forged answer does not reach another's stream."""
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

ENGINE, CLIENT, MODEL = sys.argv[1:4]
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok    " + what)
    else:
        failed += 1
        print("FAIL  " + what)


def stop_engine(eng, log, what):
    """SIGTERM, then the engine must exit 0 with no sanitizer report."""
    eng.terminate()
    eng.wait(timeout=30)
    log.seek(0)
    text = log.read()
    check(eng.returncode == 0 and "Sanitizer" not in text and "runtime error" not in text,
          what)
    if failed:
        print(text[-3000:])


def call(sock, op, body, env=None):
    body = body if isinstance(body, str) else json.dumps(body)
    # an argument holds at most 128 KiB: larger bodies go through stdin
    big = len(body) > 65536
    r = subprocess.run([CLIENT, sock, op, "-" if big else body], capture_output=True,
                       timeout=120, env=env, input=body.encode() if big else None)
    out = r.stdout.decode("utf-8", "replace")
    head, _, rest = out.partition("\n")
    parts = head.split()
    status = int(parts[1]) if len(parts) > 2 else 0
    return status, parts[2] if len(parts) > 2 else "", rest.rstrip("\n")


def sse_events(text):
    return [e[len("data: "):] for e in text.split("\n\n") if e.startswith("data: ")]


def chat(sock, **kw):
    body = {"messages": [{"role": "user", "content": kw.pop("content", "Hello there")}]}
    body.update(kw)
    return call(sock, "chat", body)


def main():
    tmp = tempfile.mkdtemp()
    sock = os.path.join(tmp, "engine.sock")
    log = open(os.path.join(tmp, "engine.log"), "w+")
    eng = subprocess.Popen([ENGINE, "serve", "--model", MODEL, "--socket", sock,
                            "--served-model-name", "glm-tiny", "--max-model-len", "512",
                            "--max-num-seqs", "16", "--max-num-batched-tokens", "64"],
                           stdout=log, stderr=log)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    try:
        run(sock)
        prefix_cache(sock, tmp)
    finally:
        stop_engine(eng, log, "engine exits cleanly on SIGTERM, no sanitizer report")
    if os.geteuid() == 0:
        isolation()
    else:
        print("skip  isolation checks: they need root (second local users)")
    print("engine: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def isolation():
    tmp = tempfile.mkdtemp()
    os.chmod(tmp, 0o755)                # other users reach the socket
    client = os.path.join(tmp, "ring_client")
    shutil.copy(CLIENT, client)
    os.chmod(client, 0o755)
    sock = os.path.join(tmp, "engine.sock")
    group = "nogroup" if has_group("nogroup") else "nobody"
    gid = grp.getgrnam(group).gr_gid
    nobody = pwd.getpwnam("nobody").pw_uid
    logpath = os.path.join(tmp, "engine.log")
    log = open(logpath, "w+")
    # mode 0666: the engine's own check is what refuses, not the file's mode
    eng = subprocess.Popen([ENGINE, "serve", "--model", MODEL, "--socket", sock,
                            "--served-model-name", "glm-tiny", "--max-model-len", "512",
                            "--max-channels", "4", "--user", "nobody",
                            "--socket-group", group, "--socket-mode", "0666",
                            "--allowed-peer-uid", "12346"], stdout=log, stderr=log)

    def as_user(uid, gid_, groups, *args, **kw):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid_]
        cmd += ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
        return subprocess.run(cmd + [client] + list(args), capture_output=True, timeout=120,
                              **kw)

    try:
        for _ in range(600):
            if os.path.exists(sock) or eng.poll() is not None:
                break
            time.sleep(0.05)
        # the socket appears before the model is loaded and root is dropped:
        # wait for the drop (a deadline for a busy machine, not a speed test)
        uids = None
        for _ in range(1200):
            if eng.poll() is not None:
                break
            with open("/proc/%d/status" % eng.pid) as f:
                uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
            if uids != ["0"] * 4:
                break
            time.sleep(0.05)
        check(uids == [str(nobody)] * 4, "--user nobody: the engine dropped root (Uid %s)"
              % " ".join(uids))

        r = as_user(12345, 12345, None, sock, "version", "")
        log.seek(0)
        check(r.returncode != 0 and not r.stdout
              and "uid 12345 gid 12345: not an allowed peer" in log.read(),
              "a peer neither in --allowed-peer-uid nor in --socket-group is refused, logged")
        for what, args in (("its supplementary group", (12345, 12345, [gid])),
                           ("its gid", (12345, gid, None)),
                           ("--allowed-peer-uid", (12346, 12346, None))):
            r = as_user(*args, sock, "version", "")
            check(r.returncode == 0 and r.stdout.startswith(b"HTTP 200"),
                  "a peer admitted by %s is served" % what)

        chan = 1024 + (64 << 20) + (1 << 20)
        r = as_user(12345, 12345, [gid], "--probe", sock)
        check(r.stdout.decode().split() == [
                  "fds=2", "header=4096", "channel=%d" % chan, "channels=4", "header_rw=0",
                  "header_reopen_rw=0", "header_write=0", "beyond=0"],
              "an allowed peer holds the read-only header and its own channel, no more: "
              + r.stdout.decode().strip())
        r = as_user(12345, 12345, [gid], "--twice", sock)
        check(r.stdout.decode().split() == ["first=0", "second=2", "third=0"],
              "one channel per pid: a second handshake refused, the first reclaimed at close: "
              + r.stdout.decode().strip())

        # the victim streams; a foreign allowed peer forges its answer
        req = json.dumps({"messages": [{"role": "user", "content": "Hello there"}],
                          "max_tokens": 48, "temperature": 0, "ignore_eos": True,
                          "stream": True})

        def content(text):
            return "".join(c["choices"][0]["delta"].get("content") or ""
                           for c in map(json.loads, sse_events(text)[:-1]) if c["choices"])
        clean = content(call(sock, "chat", req)[2])
        victim = subprocess.Popen([CLIENT, sock, "chat", req], stdout=subprocess.PIPE)
        first = victim.stdout.readline()
        r = as_user(12345, 12345, [gid], "--forge", sock)
        out = first + victim.stdout.read()      # not communicate(): it skips the buffer
        victim.wait(timeout=120)
        text = out.decode("utf-8", "replace")
        check(victim.returncode == 0 and r.stdout.startswith(b"forged ")
              and b"FORGED" not in out and text.startswith("HTTP 200 sse")
              and sse_events(text)[-1] == "[DONE]" and clean and content(text) == clean,
              "a forged answer from another allowed peer does not reach the victim's stream")

        # 4 channels, and many peers came and went: none is left held
        r = as_user(12346, 12346, None, sock, "models", "")
        check(r.returncode == 0 and b"glm-tiny" in r.stdout,
              "channels of peers that left are reclaimed")
    finally:
        stop_engine(eng, log, "the engine run as nobody exits cleanly, no sanitizer report")
        shutil.rmtree(tmp, ignore_errors=True)


def start_engine(tmp, name, *extra):
    sock = os.path.join(tmp, name + ".sock")
    log = open(os.path.join(tmp, name + ".log"), "w+")
    eng = subprocess.Popen([ENGINE, "serve", "--model", MODEL, "--socket", sock,
                            "--served-model-name", "glm-tiny", "--max-model-len", "512",
                            "--max-num-seqs", "16", "--max-num-batched-tokens", "64"]
                           + list(extra), stdout=log, stderr=log)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    return eng, log, sock


def prefix_counters(sock):
    text = call(sock, "metrics", "")[2]
    got = {}
    for name in ("queries", "hits"):
        key = 'vllm:prefix_cache_%s_total{model_name="glm-tiny"} ' % name
        line = [x for x in text.split("\n") if x.startswith(key)]
        got[name] = int(line[0][len(key):]) if len(line) == 1 else None
    return got


def prefix_cache(sock, tmp):
    system = ("You are a careful assistant for a hardware shop. Answer in short sentences, "
              "name the aisle of every item, and never invent prices. ") * 4
    asks = [("Where are the hammers?", 1), ("Do you sell nails?", 1),
            ("Where are the hammers?", 1), ("What time do you close?", 2)]
    off, off_log, off_sock = start_engine(tmp, "nocache", "--no-enable-prefix-caching")
    try:
        before = {"on": prefix_counters(sock), "off": prefix_counters(off_sock)}
        same, computed, want_q, want_h = True, [], 0, 0
        for question, n in asks:
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": question}]
            body = {"messages": msgs, "max_tokens": 6, "temperature": 0, "n": n,
                    "logprobs": True, "top_logprobs": 5}
            a = json.loads(call(sock, "chat", body)[2])
            b = json.loads(call(off_sock, "chat", body)[2])
            same &= a["choices"] == b["choices"] and a["usage"] == b["usage"]
            ids = json.loads(call(sock, "tokenize", {"messages": msgs})[2])["tokens"]
            check(len(ids) == a["usage"]["prompt_tokens"],
                  "prefix cache: /tokenize gives the chat's %d prompt ids" % len(ids))
            # vLLM's rule, per choice: full blocks in common with a prompt
            # computed before (the choices before it included), at most n - 1
            for _ in range(n):
                common = max([next((i for i, (x, y) in enumerate(zip(ids, c)) if x != y),
                                   min(len(ids), len(c))) for c in computed] or [0])
                want_h += min(common // 16, (len(ids) - 1) // 16) * 16
                want_q += len(ids)
                computed.append(ids)
        check(same, "prefix cache: answers and top-5 logprobs equal with the cache on and off")
        after = {"on": prefix_counters(sock), "off": prefix_counters(off_sock)}
        dq = after["on"]["queries"] - before["on"]["queries"]
        dh = after["on"]["hits"] - before["on"]["hits"]
        check(dq == want_q and dh == want_h and want_h > 0,
              "prefix cache: /metrics queries +%d (want %d), hits +%d (want %d)"
              % (dq, want_q, dh, want_h))
        check(after["off"] == before["off"] == {"queries": 0, "hits": 0},
              "prefix cache: --no-enable-prefix-caching counts no queries and no hits")
    finally:
        stop_engine(off, off_log, "the engine without prefix caching exits cleanly")


def has_group(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def run(sock):
    st, ct, body = chat(sock, max_tokens=8, temperature=0)
    d = json.loads(body)
    check(st == 200 and ct == "json" and d["object"] == "chat.completion"
          and d["id"].startswith("chatcmpl-") and d["model"] == "glm-tiny"
          and d["choices"][0]["message"]["role"] == "assistant"
          and d["choices"][0]["finish_reason"] == "length"
          and d["usage"]["completion_tokens"] == 8
          and d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + 8,
          "non-streaming response shape, finish_reason length, usage")
    greedy = d["choices"][0]["message"]["content"]

    # the same prompt through the CLI: the server must not change the math
    st, _, tok = call(sock, "tokenize", {"messages": [{"role": "user", "content": "Hello there"}]})
    ids = json.loads(tok)["tokens"]
    st, _, text = call(sock, "detokenize", {"tokens": ids})
    prompt = json.loads(text)["prompt"]
    gen = subprocess.run([ENGINE, "generate", "--model", MODEL, "--prompt", prompt,
                          "--max-tokens", "8", "--skip-special-tokens"], capture_output=True)
    check(gen.stdout.decode()[:-1] == greedy,
          "greedy chat output equals glm-engine generate on the rendered prompt")

    st, ct, body = chat(sock, max_tokens=6, temperature=0, stream=True,
                        stream_options={"include_usage": True}, n=2)
    ev = sse_events(body)
    chunks = [json.loads(e) for e in ev[:-1]]
    text = {0: "", 1: ""}
    finish = {}
    for c in chunks:
        for ch in c.get("choices", []):
            text[ch["index"]] += ch["delta"].get("content", "")
            if ch.get("finish_reason"):
                finish[ch["index"]] = ch["finish_reason"]
    check(st == 200 and ct == "sse" and ev[-1] == "[DONE]"
          and chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12
          and finish == {0: "length", 1: "length"} and text[0] == text[1] == greedy[:len(text[0])]
          and all(c["object"] == "chat.completion.chunk" for c in chunks),
          "streaming n=2: role chunk, deltas, finish chunks, usage chunk, [DONE]")

    a = chat(sock, max_tokens=12, temperature=1.0, seed=1234)[2]
    b = chat(sock, max_tokens=12, temperature=1.0, seed=1234)[2]
    c = chat(sock, max_tokens=12, temperature=1.0, seed=4321)[2]
    ca, cb, cc = (json.loads(x)["choices"][0]["message"]["content"] for x in (a, b, c))
    check(ca == cb and ca != cc, "same seed, same sampled text; another seed, another")

    stop = greedy[3:6]
    d = json.loads(chat(sock, max_tokens=8, temperature=0, stop=[stop])[2])
    ch = d["choices"][0]
    check(ch["finish_reason"] == "stop" and ch["stop_reason"] == stop
          and ch["message"]["content"] == greedy[:greedy.index(stop)],
          "stop string ends the answer before it, stop_reason names it")

    d = json.loads(chat(sock, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2)[2])
    lp = d["choices"][0]["logprobs"]["content"]
    check(len(lp) == 3 and all(len(e["top_logprobs"]) == 2 and e["logprob"] <= 0
                               and e["top_logprobs"][0]["logprob"] >= e["logprob"] for e in lp),
          "logprobs with top_logprobs")

    # logit_bias pins a token; a frequency penalty breaks the random model's
    # repetition (greedy without it repeats one token)
    d = json.loads(chat(sock, max_tokens=6, temperature=0, logit_bias={"1234": 100})[2])
    st, _, text = call(sock, "detokenize", {"tokens": [1234] * 6})
    check(d["choices"][0]["message"]["content"] == json.loads(text)["prompt"],
          "logit_bias +100 on token 1234 makes every token 1234")

    def top_repeat(**kw):
        d = json.loads(chat(sock, max_tokens=16, temperature=0, logprobs=True, **kw)[2])
        toks = [e["token"] for e in d["choices"][0]["logprobs"]["content"]]
        return max(toks.count(t) for t in toks)
    plain, penalised = top_repeat(), top_repeat(frequency_penalty=2.0)
    check(penalised < plain, "frequency_penalty 2 lowers the most repeated token's count"
          " (%d -> %d of 16)" % (plain, penalised))
    rep = top_repeat(repetition_penalty=5.0)
    check(rep < plain, "repetition_penalty 5 lowers it too (%d -> %d of 16)" % (plain, rep))

    # 40 requests at once: batching must not change greedy output
    procs = [subprocess.Popen([CLIENT, sock, "chat", json.dumps(
        {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 8,
         "temperature": 0})], stdout=subprocess.PIPE) for _ in range(40)]
    outs = [p.communicate(timeout=120)[0].decode("utf-8", "replace") for p in procs]
    same = [json.loads(o.split("\n", 1)[1])["choices"][0]["message"]["content"] == greedy
            for o in outs]
    check(all(same), "40 concurrent requests: all equal the single-request greedy output")

    errors = [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}, 400, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x " * 600}]}, 400, "input_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}, 400, "top_logprobs"),
        ({"messages": [{"role": "user", "content": "x"}], "stream_options": {}}, 400,
         "stream_options"),
    ]
    for req, status, param in errors:
        st, ct, body = call(sock, "chat", req)
        e = json.loads(body).get("error", {})
        check(st == status and e.get("code") == status and e.get("param") == param
              and e.get("type") == "BadRequestError" and e.get("message"),
              "error %d param=%s: %s" % (status, param, e.get("message", "")[:70]))
    st, ct, body = call(sock, "chat", "{not json")
    check(st == 400 and "not a JSON object" in json.loads(body)["error"]["message"],
          "invalid JSON body is a 400")

    # /detokenize: ids parsed as they stream in, at most max-model-len (512)
    st, _, body = call(sock, "detokenize", {"tokens": [1234] * 512})
    check(st == 200 and json.loads(body)["prompt"], "detokenize: max-model-len ids")
    st, _, body = call(sock, "detokenize", "{\"tokens\":[" + ",".join(["1234"] * 200000) + "]}")
    e = json.loads(body).get("error", {})
    check(st == 413 and e.get("type") == "RequestEntityTooLargeError"
          and e.get("param") == "tokens" and "512" in e.get("message", ""),
          "detokenize: more ids than max-model-len is a 413 naming it: %s"
          % e.get("message", "")[:70])
    for req, param, what in [
            ({"tokens": "1 2"}, "tokens", "'tokens' must be a list"),
            ({"tokens": None}, "tokens", "'tokens' must be a list"),
            ({"prompt": "x"}, "tokens", "'tokens' must be a list"),
            ({"tokens": [1, [2]]}, "tokens", "token 1 is not an id"),
            ({"tokens": [1, 2, 2.5]}, "tokens", "token 2 is not an id"),
            ({"tokens": [-1]}, "tokens", "token 0 is not an id"),
            ({"tokens": [10 ** 9]}, "tokens", "token 0 is not an id"),
            ('{"tokens": [1, -1, ', "tokens", "token 1 is not an id"),   # read no further
            ([1, 2], None, "not a JSON object"),
            ('{"tokens": [1,', None, "not a JSON object: parse error"),
            ('{"tokens": "x", ]', None, "not a JSON object: parse error")]:
        st, _, body = call(sock, "detokenize", req)
        e = json.loads(body).get("error", {})
        check(st == 400 and e.get("param") == param and what in e.get("message", ""),
              "detokenize %s: 400 %s" % (json.dumps(req)[:30], e.get("message", "")[:60]))

    # cancelled while its parse and tokens are on an intake thread: dropped
    # when it comes back, and the same request after it is answered
    env = dict(os.environ, RING_CLIENT_CANCEL_FIRST="1")
    for op, req in [("tokenize", {"prompt": "Hello there " * 50000}),
                    ("chat", {"messages": [{"role": "user", "content": "Hello there"}],
                              "max_tokens": 8, "temperature": 0})]:
        st, _, rest = call(sock, op, req, env=env)
        ok = st == 200
        if ok and op == "chat":
            ok = json.loads(rest)["choices"][0]["message"]["content"] == greedy
        check(ok, "%s cancelled in intake, then again: answered" % op)

    # cancelled while the worker was still writing its body (a client gone
    # mid-submit, ngx_http_glm_submit's turns): the engine drops the part it
    # has, keeps the connection, and the next body on it is answered
    env = dict(os.environ, RING_CLIENT_CANCEL_FIRST="partial")
    st, _, rest = call(sock, "chat", {"messages": [{"role": "user", "content": "Hello there"}],
                                      "max_tokens": 8, "temperature": 0}, env=env)
    check(st == 200 and json.loads(rest)["choices"][0]["message"]["content"] == greedy,
          "chat cancelled with half its body in the ring, then again: answered")

    st, ct, body = call(sock, "metrics", "")
    check(st == 200 and ct == "text" and 'vllm:num_requests_running{model_name="glm-tiny"} 0' in body
          and 'vllm:kv_cache_usage_perc{model_name="glm-tiny"} 0.000000' in body,
          "metrics: nothing running and the KV cache empty after all requests")
    st, ct, body = call(sock, "models", "")
    check(st == 200 and json.loads(body)["data"][0]["id"] == "glm-tiny", "/v1/models lists the name")


if __name__ == "__main__":
    main()
