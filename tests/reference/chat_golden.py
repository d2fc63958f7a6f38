#!/usr/bin/env python3
"""Golden chat-template renderings for tests/chat.rs, made by transformers' own renderer.

Reads `tokenizer.chat_template` (and the BOS/EOS token strings) from the two test GGUFs with gguf-py,
adds attend's built-in fallbacks (src/chat/templates/*.jinja; the Gemma 3 GGUF ships no template) and a
template that exercises the Python-flavoured Jinja features HF templates use, renders a set of
conversations with `transformers.utils.chat_template_utils.render_jinja_template` (the function behind
`tokenizer.apply_chat_template(tokenize=False)`), and writes tests/reference/chat_golden.json. Tool cases (`tool_cases`) render conversations with tool
calls and tool results, with `tools=`, through Qwen2.5's and Llama 3.2's tool-calling templates
(tests/reference/templates/).

    python3 -m venv ~/.cache/attend/venv-chat
    ~/.cache/attend/venv-chat/bin/pip install transformers gguf jinja2   # torch is not needed
    HF_HUB_OFFLINE=1 ~/.cache/attend/venv-chat/bin/python tests/reference/chat_golden.py
"""
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import gguf  # noqa: E402
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MODELS = Path.home() / ".cache/attend/models"


def gguf_template(path):
    r = gguf.GGUFReader(str(path))
    tokens = r.fields["tokenizer.ggml.tokens"]
    bos = tokens.contents(r.fields["tokenizer.ggml.bos_token_id"].contents())
    eos = tokens.contents(r.fields["tokenizer.ggml.eos_token_id"].contents())
    field = r.fields.get("tokenizer.chat_template")
    return (field.contents() if field is not None else None), bos, eos


# Python string/dict methods, tojson variants, namespace, loop controls, Python printing of values,
# whitespace control under trim_blocks + lstrip_blocks, and {% generation %}.
FEATURES_TEMPLATE = """{%- set ns = namespace(n_user=0, last_user='') %}
{% for m in messages %}
  {% if m.role == 'user' %}
    {% set ns.n_user = ns.n_user + 1 %}
    {% set ns.last_user = m.content %}
  {% endif %}
{% endfor %}
[{{ bos_token }}] users={{ ns.n_user }} last={{ ns.last_user.strip() | tojson }}
{% for m in messages %}
    {% if loop.index > 6 %}{% break %}{% endif %}
    {% if m.content == '' %}
<empty {{ m.role.upper() }}>
        {% continue %}
    {% endif %}
{{ loop.index0 }}:{{ m['role'] | upper }}:{{ m.content.startswith(' ') }}/{{ m.content.endswith('!') }}
 strip=[{{ m.content.strip() }}] lstrip=[{{ m.content.lstrip() }}] words={{ m.content.split() | length }}
 title={{ m.content.title() }} replaced={{ m.content.replace('a', 'A') }} lower={{ m.content.lower() }}
 json={{ m | tojson }} ascii={{ m.content | tojson(ensure_ascii=True) }}
 repr={{ [m.role, loop.first, none, 1.5, 2] }} cycle={{ loop.cycle('odd', 'even') }}
    {% if m.role == 'assistant' %}
{% generation %}{{ m.content | trim }}{% endgeneration %}
    {% endif %}
{% endfor %}
{{ {'a': 1, 'b': [true, none, 0.1, 1e20, 'x"y'], 'ü': {'k': -2.5e-7}} | tojson }}
{{ {'z': 1, 'a': [1, 2], 'm': {}} | tojson(indent=2, sort_keys=True) }}
{{ messages | map(attribute='role') | join(',') }} {{ messages | length }} {{ eos_token | length }}
{%- for k, v in {'x': 1, 'y': 2}.items() %} {{ k }}={{ v }}{% endfor %}

{%- if add_generation_prompt %}
<gen>{{ '\\n' }}
{%- endif %}
"""

# The chat template Google publishes with Gemma 3 instruct models (tokenizer_config.json of
# google/gemma-3-*-it); the Gemma 3 GGUF used here carries none, so attend's fallback must render the
# same text for string contents (checked below).
GEMMA3_HF_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "user_only": [{"role": "user", "content": "Hello!"}],
    "multi_turn": [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "Seven is a prime number."},
        {"role": "user", "content": "And an even one?"},
    ],
    "multi_turn_no_system": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the GPU cross the road?"},
    ],
    "special_chars": [
        {"role": "system", "content": "Quotes \" and ' and \\ backslash, {{ braces }} {% not a tag %}"},
        {"role": "user", "content": "  Ünïcödé ✓ 日本語 🦀\n\ttab, newline\r\n<|im_end|> <end_of_turn> x < y & z  "},
        {"role": "assistant", "content": "\n\nIt's fine!\n"},
        {"role": "user", "content": "null None true {\"json\": [1, 2]} \u0007bell"},
    ],
    "empty_content": [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "after empties"},
    ],
    "long_alternation": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: {'word ' * i}".strip()}
        for i in range(9)
    ],
    "bad_alternation": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ],
}

# Tool definitions in OpenAI's shape, as `apply_chat_template(tools=...)` takes them.
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two integers.",
        "parameters": {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "integer"}},
                       "required": ["b", "a"]}}},
]

# HF passes `arguments` as given; transformers' docs give a dict (attend turns OpenAI's JSON string
# into one before rendering, as llama.cpp and vLLM do).
TOOL_CONVERSATIONS = {
    "ask": [{"role": "user", "content": "What is the weather in Paris?"}],
    "system_ask": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris, in celsius?"},
    ],
    "round_trip": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
    ],
    "two_results": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Add 2 and 3, and 4 and 5."},
        {"role": "assistant", "content": "Adding.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": {"b": 3, "a": 2}}},
            {"id": "call_b", "type": "function", "function": {"name": "add", "arguments": {"b": 5, "a": 4}}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "5"},
        {"role": "tool", "tool_call_id": "call_b", "content": "9"},
        {"role": "assistant", "content": "5 and 9."},
        {"role": "user", "content": "Thanks!"},
    ],
}


def tool_cases():
    templates, cases = {}, []
    for name, file, bos, eos in [("qwen2.5", "qwen2.5-instruct.jinja", "", "<|im_end|>"),
                                 ("llama3.2", "llama3.2-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>")]:
        templates[name] = {"source": (HERE / "templates" / file).read_text(), "bos": bos, "eos": eos}
    for tname, t in templates.items():
        for cname, messages in TOOL_CONVERSATIONS.items():
            for tools in (TOOLS, None):
                case = {"template": tname, "conversation": cname, "tools": tools is not None,
                        "add_generation_prompt": True}
                try:
                    rendered, _ = render_jinja_template(
                        conversations=[messages], tools=tools, chat_template=t["source"],
                        add_generation_prompt=True, bos_token=t["bos"], eos_token=t["eos"])
                    case["expected"] = rendered[0]
                except Exception as e:  # noqa: BLE001 - the error text is the golden value
                    case["error"] = str(e)
                cases.append(case)
    return templates, cases


def main():
    templates = {}
    for name, file in [("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), ("gemma3", "gemma-3-270m-q4_k_m.gguf")]:
        src, bos, eos = gguf_template(MODELS / file)
        if src is not None:
            templates[f"{name}_gguf"] = {"source": src, "bos": bos, "eos": eos}
        else:
            print(f"{file}: no tokenizer.chat_template (attend uses its fallback)")
    templates["chatml_fallback"] = {
        "source": (REPO / "src/chat/templates/chatml.jinja").read_text(), "bos": "", "eos": "<|im_end|>"}
    templates["gemma_fallback"] = {
        "source": (REPO / "src/chat/templates/gemma.jinja").read_text(), "bos": "<bos>", "eos": "<eos>"}
    templates["gemma3_hf"] = {"source": GEMMA3_HF_TEMPLATE, "bos": "<bos>", "eos": "<eos>"}
    templates["features"] = {"source": FEATURES_TEMPLATE, "bos": "<s>", "eos": "</s>"}

    cases = []
    for tname, t in templates.items():
        for cname, messages in CONVERSATIONS.items():
            for gen in (True, False):
                case = {"template": tname, "conversation": cname, "add_generation_prompt": gen}
                try:
                    rendered, _ = render_jinja_template(
                        conversations=[messages], chat_template=t["source"], add_generation_prompt=gen,
                        bos_token=t["bos"], eos_token=t["eos"])
                    case["expected"] = rendered[0]
                except Exception as e:  # noqa: BLE001 - the error text is the golden value
                    case["error"] = str(e)
                cases.append(case)

    # The Gemma fallback must format every conversation exactly as Google's template does.
    by_key = {(c["template"], c["conversation"], c["add_generation_prompt"]): c for c in cases}
    for (tname, cname, gen), case in by_key.items():
        if tname == "gemma_fallback":
            hf = by_key[("gemma3_hf", cname, gen)]
            assert case.get("expected") == hf.get("expected") and ("error" in case) == ("error" in hf), \
                (cname, gen, case, hf)

    tool_templates, tcases = tool_cases()
    out = {"generated_by": "tests/reference/chat_golden.py", "templates": templates,
           "conversations": CONVERSATIONS, "cases": cases, "tools": TOOLS,
           "tool_templates": tool_templates, "tool_conversations": TOOL_CONVERSATIONS, "tool_cases": tcases}
    path = HERE / "chat_golden.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
