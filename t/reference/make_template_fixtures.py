#!/usr/bin/env python3
"""
make_template_fixtures.py: the expected chat-template renders that
t/unit/test_templates.c (the TEMPLATES line, `make template-check`) compares
the engine's Jinja2 interpreter against.

For every template and every conversation below, it renders the prompt the way
transformers' `apply_chat_template(..., tokenize=False)` does (which calls
`transformers.utils.chat_template_utils.render_jinja_template`: jinja2's
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols,
the {% generation %} extension, transformers' tojson / raise_exception /
strftime_now / dict / namespace), and records the text, or the error when the
render raises (the engine must then fail too).

Templates:
  - every ../shared/chat-templates/*.jinja, by path relative to the repository
    (never copied into it), rendered through the glm45-tiny tokenizer with
    chat_template=<source> and bos_token="<s>" added to its special tokens;
    the GLM-family ones are read from their committed copies in
    t/fixtures/templates/glm instead (the tests need them on any clone, where
    ../shared is absent), and recorded under that path;
  - the three test checkpoints t/fixtures/{glm45-tiny,glm45-air-tiny,glm45v-tiny},
    loaded with AutoTokenizer.from_pretrained(dir) exactly as a user would, so
    the checkpoint's own chat_template.jinja and special tokens are used.

A conversation is an OpenAI chat-completions request body (messages, tools,
add_generation_prompt (default true), continue_final_message,
chat_template_kwargs), mapped onto apply_chat_template the way the engine maps
it (glm_chat_template_build_context in engine/text/chat_template.c, "transformers"
mode: no vLLM-style rewriting of the messages).

strftime_now is pinned: datetime.now() inside transformers' renderer returns
NOW (a naive local time) and the C test passes the same broken-down time.

Writes t/fixtures/templates/conversations.json (the requests and NOW) and
t/fixtures/templates/expected/<name>.json per template:
  {"template": path, "kind": "file"|"model_dir", "glm": bool,
   "special_tokens": {...}, "results": [{"id", "output"} | {"id", "error"}]}

Run: ~/venv-ref/bin/python t/reference/make_template_fixtures.py
(transformers 5.23.0, jinja2 3.1.6; see t/reference/requirements.txt).
"""

import argparse
import datetime as _dt
import glob
import json
import os
import sys

import transformers
import transformers.utils.chat_template_utils as ctu
from transformers import AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS_REL = "../shared/chat-templates"
GLM_REL = "t/fixtures/templates/glm"
MODEL_DIRS = ["t/fixtures/glm45-tiny", "t/fixtures/glm45-air-tiny", "t/fixtures/glm45v-tiny"]
NOW = _dt.datetime(2026, 3, 5, 14, 7, 9)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


# ---------------------------------------------------------------- conversations

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_flights",
        "description": "Search flights; returns a list of offers.",
        "parameters": {
            "type": "object",
            "properties": {
                "route": {
                    "type": "object",
                    "description": "Where from and to.",
                    "properties": {
                        "from": {"type": "string"},
                        "to": {"type": "string"},
                        "via": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["from", "to"],
                },
                "passengers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "age": {"type": "number"},
                            "seat": {"type": ["string", "null"], "enum": ["aisle", "window", None]},
                        },
                    },
                },
                "max_price": {"type": "number", "description": "In EUR; 0.5 steps."},
                "direct_only": {"type": "boolean"},
            },
            "required": ["route"],
        },
    },
}

UNICODE_TOOL = {
    "type": "function",
    "function": {
        "name": "translate",
        "description": "Traduit un texte — 翻译文本 🌍",
        "parameters": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "description": "Texte à traduire"},
                "target": {"type": "string", "enum": ["中文", "español", "ελληνικά"]},
            },
            "required": ["text", "target"],
        },
    },
}

SYS = "You are a helpful assistant."


def conv(cid, messages, **kw):
    req = {"messages": messages}
    req.update(kw)
    return {"id": cid, "request": req}


CONVERSATIONS = [
    conv("single_user", [{"role": "user", "content": "Hello!"}]),
    conv("system_user", [{"role": "system", "content": SYS}, {"role": "user", "content": "What is 2+2?"}]),
    conv("multi_turn", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "7 is a prime number."},
        {"role": "user", "content": "And another one?"},
    ]),
    conv("multi_turn_no_gen", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ], add_generation_prompt=False),
    conv("list_text_parts", [
        {"role": "system", "content": [{"type": "text", "text": SYS}]},
        {"role": "user", "content": [{"type": "text", "text": "First part. "}, {"type": "text", "text": "Second part."}]},
    ]),
    conv("image_and_text", [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]},
    ]),
    conv("video_and_text", [
        {"role": "user", "content": [{"type": "text", "text": "Describe the clip:"}, {"type": "video"}]},
    ]),
    conv("two_images_multi_turn", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare them."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "The first is brighter."}]},
        {"role": "user", "content": [{"type": "text", "text": "And this one?"}, {"type": "image"}]},
    ]),
    conv("tools_user", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "What's the weather in Paris?"},
    ], tools=[WEATHER_TOOL, SEARCH_TOOL]),
    conv("tool_call_object_args", [
        {"role": "user", "content": "Weather in Paris for 3 days?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18.5, \"sky\": \"cloudy\"}"},
    ], tools=[WEATHER_TOOL]),
    conv("tool_call_string_args", [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "-3 degrees, snow"},
    ], tools=[WEATHER_TOOL]),
    conv("parallel_tool_calls", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "Weather in Rome and flights Rome to Oslo for two adults."},
        {"role": "assistant", "content": "Let me check both.", "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}}},
            {"id": "call_b", "type": "function",
             "function": {"name": "search_flights", "arguments": {
                 "route": {"from": "FCO", "to": "OSL", "via": ["MUC"]},
                 "passengers": [{"name": "Ann", "age": 34, "seat": None}, {"name": "Bo", "age": 36.5, "seat": "aisle"}],
                 "max_price": 450.0, "direct_only": False}}},
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": "21 C, sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "[{\"price\": 389.99, \"stops\": 1}]"},
        {"role": "assistant", "content": "Sunny, 21 C; a one-stop flight costs 389.99 EUR."},
        {"role": "user", "content": "Thanks!"},
    ], tools=[WEATHER_TOOL, SEARCH_TOOL]),
    conv("reasoning_history", [
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "reasoning_content": "91 = 7 * 13, so it is not prime.",
         "content": "No, 91 = 7 x 13."},
        {"role": "user", "content": "Is 97 prime?"},
    ]),
    conv("reasoning_last_turn", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "Is 97 prime?"},
        {"role": "assistant", "reasoning_content": "\nCheck divisors up to 9: none divide 97.\n",
         "content": "  Yes, 97 is prime.  "},
    ], add_generation_prompt=False),
    conv("think_inline", [
        {"role": "user", "content": "Pick a colour."},
        {"role": "assistant", "content": "<think>\nUser wants one colour.\n</think>\n\nBlue."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "<think>Something warm.</think>Red."},
    ], add_generation_prompt=False),
    conv("thinking_off", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "Say hi."},
    ], chat_template_kwargs={"enable_thinking": False}),
    conv("thinking_off_tools_history", [
        {"role": "user", "content": "Weather in Lima?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lima"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "19 C"},
        {"role": "user", "content": "Thanks /nothink"},
    ], tools=[WEATHER_TOOL], chat_template_kwargs={"enable_thinking": False}),
    conv("thinking_on_explicit", [
        {"role": "user", "content": "Explain recursion briefly."},
    ], chat_template_kwargs={"enable_thinking": True, "reasoning_effort": "high"}),
    conv("non_ascii", [
        {"role": "system", "content": "Tu es un assistant serviable. 你是一个乐于助人的助手。"},
        {"role": "user", "content": "¿Qué tal? Привет! こんにちは 👋🏽 — «quotes» ‘single’ \u00e9\u0301"},
        {"role": "assistant", "content": "Très bien, merci ! 很好 😀"},
        {"role": "user", "content": "Traduis « bonjour » en 中文."},
    ], tools=[UNICODE_TOOL]),
    conv("special_chars", [
        {"role": "system", "content": "  Leading and trailing spaces.  \n"},
        {"role": "user", "content": "Quotes \" and ' and backslash \\ and {{ braces }} {% tags %} <|user|> tab\there\r\nCRLF"},
        {"role": "assistant", "content": "\n\nOK\n\n"},
        {"role": "user", "content": "   "},
    ]),
    conv("empty_system", [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Empty system prompt above."},
    ]),
    conv("continue_final", [
        {"role": "user", "content": "Write a haiku about the sea."},
        {"role": "assistant", "content": "Waves fold into foam,"},
    ], add_generation_prompt=False, continue_final_message=True),
    conv("numbers_in_args", [
        {"role": "user", "content": "Book it."},
        {"role": "assistant", "content": "Booking.", "tool_calls": [
            {"id": "n1", "type": "function", "function": {"name": "search_flights", "arguments": {
                "route": {"from": "AMS", "to": "NRT"},
                "passengers": [{"name": "Zoë", "age": 7}],
                "max_price": 1e21, "tolerance": 0.1, "ratio": 1.0, "tiny": 1e-7, "big": 12345678901234567,
                "neg": -0.0, "flag": True, "none": None, "nested": [[1, 2.5], {"k": []}, {}]}}}]},
        {"role": "tool", "tool_call_id": "n1", "content": "booked"},
    ], tools=[SEARCH_TOOL]),
    conv("tool_result_list_content", [
        {"role": "user", "content": "Weather in Kyiv?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "k1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Kyiv"}}}]},
        {"role": "tool", "tool_call_id": "k1", "content": [{"type": "text", "text": "12 C, rain"}]},
    ], tools=[WEATHER_TOOL]),
    conv("long_conversation", [{"role": "system", "content": SYS}] + [
        m for i in range(6) for m in (
            {"role": "user", "content": "Question %d: what is %d squared?" % (i, i)},
            {"role": "assistant", "content": "%d squared is %d." % (i, i * i)})
    ] + [{"role": "user", "content": "Sum them all."}]),
    conv("developer_and_names", [
        {"role": "developer", "content": "Answer tersely."},
        {"role": "user", "name": "alice", "content": "Hi there"},
    ]),
    conv("documents_rag", [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "What does the report say about revenue?"},
    ], documents=[{"title": "Q3 report", "text": "Revenue grew 12% to 4.2M EUR."},
                  {"title": "Memo", "text": "Costs are flat."}]),
    conv("assistant_parts_and_tool_calls", [
        {"role": "user", "content": [{"type": "text", "text": "Check Paris."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking the weather."}],
         "tool_calls": [{"id": "p1", "type": "function",
                         "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "p1", "name": "get_weather", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "It is 21 C in Paris."},
        {"role": "user", "content": "And tomorrow?"},
    ], tools=[WEATHER_TOOL]),
    conv("empty_tools_list", [
        {"role": "user", "content": "No tools today."},
    ], tools=[]),
    conv("assistant_first", [
        {"role": "assistant", "content": "Hello, I am ready."},
        {"role": "user", "content": "Good."},
    ]),
]


# ---------------------------------------------------------------- rendering

def reference_render(tok, req, chat_template=None, extra_kwargs=None):
    """apply_chat_template as glm_chat_template_build_context maps a request."""
    kwargs = dict(extra_kwargs or {})
    kwargs.update(req.get("chat_template_kwargs") or {})
    return tok.apply_chat_template(
        req["messages"],
        tools=req.get("tools"),
        documents=req.get("documents"),
        chat_template=chat_template,
        add_generation_prompt=req.get("add_generation_prompt", True),
        continue_final_message=req.get("continue_final_message", False),
        tokenize=False,
        **kwargs,
    )


def render_all(tok, chat_template, extra_kwargs):
    results = []
    for c in CONVERSATIONS:
        try:
            out = reference_render(tok, json.loads(json.dumps(c["request"])), chat_template, extra_kwargs)
            results.append({"id": c["id"], "output": out})
        except Exception as e:  # a raising render is an expected error
            results.append({"id": c["id"], "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")})
    return results


def is_glm(name):
    return "glm" in name.lower()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "t/fixtures/templates"))
    args = ap.parse_args()

    ctu.datetime = _FixedDatetime  # pins strftime_now (transformers looks it up at call time)
    os.makedirs(os.path.join(args.out, "expected"), exist_ok=True)
    for old in glob.glob(os.path.join(args.out, "expected", "*.json")):
        os.remove(old)

    with open(os.path.join(args.out, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump({"now": NOW.strftime("%Y-%m-%dT%H:%M:%S"), "conversations": CONVERSATIONS},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")

    base_tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "t/fixtures/glm45-tiny"))
    jobs = []
    corpus = os.path.normpath(os.path.join(ROOT, CORPUS_REL))
    glm_copies = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, GLM_REL, "*.jinja"))}
    for path in sorted(glob.glob(os.path.join(corpus, "*.jinja"))):
        name = os.path.basename(path)[:-len(".jinja")]
        rel = CORPUS_REL + "/" + os.path.basename(path)
        if is_glm(name):
            if os.path.basename(path) not in glm_copies:
                sys.exit("%s is a GLM template: copy it into %s first" % (path, GLM_REL))
            rel = GLM_REL + "/" + os.path.basename(path)
            path = os.path.join(ROOT, rel)
        with open(path, encoding="utf-8") as f:
            src = f.read()
        extra = {"bos_token": "<s>"}
        special = dict(base_tok.special_tokens_map)
        special.update(extra)
        jobs.append((name, rel, "file", base_tok, src, extra, special))
    for d in MODEL_DIRS:
        tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, d))
        jobs.append(("model__" + os.path.basename(d), d, "model_dir", tok, None, None,
                     dict(tok.special_tokens_map)))

    total = errors = 0
    for name, rel, kind, tok, src, extra, special in jobs:
        results = render_all(tok, src, extra)
        total += len(results)
        errors += sum(1 for r in results if "error" in r)
        doc = {"template": rel, "kind": kind, "glm": is_glm(name), "special_tokens": special,
               "results": results}
        with open(os.path.join(args.out, "expected", name + ".json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=0)
            f.write("\n")
    print("wrote %d templates x %d conversations (%d renders raise) with transformers %s"
          % (len(jobs), len(CONVERSATIONS), errors, transformers.__version__))


if __name__ == "__main__":
    sys.exit(main())
