#!/usr/bin/env python3
"""openai_check.py BASE_URL: the official `openai` Python package against
ngx_glm (nginx + engine), chat and legacy completions, streaming and not.  Prints "ok"/"FAIL" lines and
"openai: N passed, N failed"; exit 1 on any failure."""
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if cond else (passed, failed + 1)
    print(("ok    " if cond else "FAIL  ") + what)


models = client.models.list()
name = models.data[0].id
check(len(models.data) >= 1 and models.data[0].object == "model", "models.list: " + name)

msgs = [{"role": "user", "content": "Say something about nginx."}]
r = client.chat.completions.create(model=name, messages=msgs, max_tokens=10, temperature=0)
text = r.choices[0].message.content
check(r.object == "chat.completion" and r.choices[0].finish_reason == "length"
      and r.usage.completion_tokens == 10 and isinstance(text, str) and text,
      "create(): %d tokens, finish_reason %s" % (r.usage.completion_tokens,
                                                 r.choices[0].finish_reason))

stream = client.chat.completions.create(model=name, messages=msgs, max_tokens=10, temperature=0,
                                        stream=True, stream_options={"include_usage": True})
parts, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        parts.append(c.delta.content or "")
        finish = c.finish_reason or finish
check("".join(parts) == text and finish == "length" and usage is not None
      and usage.completion_tokens == 10, "stream=True: same text, usage chunk, finish_reason")

r = client.chat.completions.create(model=name, messages=msgs, max_tokens=4, n=2,
                                   temperature=1.0, seed=5)
check(len(r.choices) == 2 and {c.index for c in r.choices} == {0, 1}, "n=2 gives two choices")

# /v1/completions through the SDK's legacy client.completions
c = client.completions.create(model=name, prompt="Say something about nginx.", max_tokens=6,
                              temperature=0, logprobs=2, echo=True)
ch = c.choices[0]
check(c.object == "text_completion" and ch.finish_reason == "length"
      and c.usage.completion_tokens == 6 and ch.text.startswith("Say something about nginx.")
      and len(ch.logprobs.tokens) == len(ch.logprobs.token_logprobs)
      == len(ch.logprobs.top_logprobs) == len(ch.logprobs.text_offset)
      and ch.logprobs.token_logprobs[0] is None,
      "completions.create(echo, logprobs): %d tokens, finish_reason %s"
      % (c.usage.completion_tokens, ch.finish_reason))
plain = client.completions.create(model=name, prompt="Say something about nginx.",
                                  max_tokens=6, temperature=0)
stream = client.completions.create(model=name, prompt="Say something about nginx.",
                                   max_tokens=6, temperature=0, stream=True,
                                   stream_options={"include_usage": True})
parts, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        parts.append(c.text)
        finish = c.finish_reason or finish
check("".join(parts) == plain.choices[0].text and finish == "length" and usage is not None
      and usage.completion_tokens == 6,
      "completions.create(stream=True): same text, usage chunk, finish_reason")
many = client.completions.create(model=name, prompt=["one", "two"], n=2, max_tokens=2)
check([c.index for c in many.choices] == [0, 1, 2, 3], "completions: 2 prompts, n=2")
try:
    client.completions.create(model=name, prompt="a", suffix="b")
    check(False, "suffix raises BadRequestError")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "suffix is not currently supported" in str(e),
          "completions suffix: BadRequestError 400")

try:
    client.chat.completions.create(model="no-such-model", messages=msgs)
    check(False, "unknown model raises NotFoundError")
except openai.NotFoundError as e:
    check(e.status_code == 404 and "does not exist" in str(e), "unknown model: NotFoundError 404")

try:
    client.chat.completions.create(model=name, messages=msgs, max_tokens=10 ** 7)
    check(False, "too large max_tokens raises BadRequestError")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "maximum context length" in str(e),
          "max_tokens too large: BadRequestError 400")

print("openai: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
