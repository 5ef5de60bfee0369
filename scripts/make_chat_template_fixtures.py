#!/usr/bin/env python3
"""Writes `tests/fixtures/chat_templates.json`: chat templates in the styles
open models ship (ChatML as Qwen uses it, Llama 3, Mistral's [INST], Gemma's
turns, and one exercising the Jinja features templates lean on), each with a
conversation and the text `transformers` renders for it, which
`gpt/src/chat_template.rs` is tested against.

It also writes `tests/fixtures/chat_template_ids.json`: the ChatML, Llama 3,
Mistral and Gemma templates paired with the small `tokenizer.json` files of
`gpt/tests/fixtures/hf_json/` (plus the turn-marker special tokens each
template names, as `added_tokens` entries to append), with the text and the
ids `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`
gives. transformers tokenizes the rendered text with
`add_special_tokens=False` (a template writes BOS into the text itself), and
the script checks the ids are `tokenizer(text, add_special_tokens=False)`'s.

The text comes from `transformers.utils.chat_template_utils.render_jinja_template`,
the function `tokenizer.apply_chat_template(messages, tokenize=False,
add_generation_prompt=...)` calls, so it is rendered exactly as transformers
renders (its sandboxed Jinja environment with trim_blocks and lstrip_blocks,
its `raise_exception`, `tojson` and `strftime_now`).

Requirements: `pip install transformers jinja2 tokenizers`. Run from anywhere:

    python3 scripts/make_chat_template_fixtures.py
"""

import json
import pathlib
import tempfile

from tokenizers import AddedToken, Tokenizer
from transformers import AutoTokenizer

from transformers.utils.chat_template_utils import render_jinja_template

CHATML = (
    "{%- for message in messages %}"
    "{%- if loop.first and message.role != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

# Written over several lines, as many Hub templates are: trim_blocks and
# lstrip_blocks decide its whitespace. It also uses Python string methods,
# namespace(), break (transformers enables Jinja's loopcontrols), tojson
# (with non-ASCII text and characters HTML would escape) and loop.last.
FEATURES = """{% set ns = namespace(system='') %}
{% for message in messages %}
    {% if message.role == 'system' %}
        {% set ns.system = message.content.strip() %}
        {% break %}
    {% endif %}
{% endfor %}
{% if ns.system %}
<<SYS>>{{ ns.system.upper() }}<</SYS>>
{% endif %}
{% for message in messages if message.role != 'system' %}
    {{ message.role.title() }}: {{ message.content.strip() | replace('\\n', ' ') }}
    [{{ message.content.split() | length }} words{% if message.content.strip().startswith('Why') %}, a question{% endif %}]
    {{ message | tojson }}
    {% if loop.last %}(last){% endif %}
{% endfor %}
{% if add_generation_prompt %}
Assistant:
{% endif %}"""

SYSTEM = {"role": "system", "content": "  You answer briefly.\n"}
CHAT = [
    {"role": "user", "content": "  Why is the sky blue? Café ✓ <b>&</b>  "},
    {"role": "assistant", "content": "Rayleigh scattering:\nshort waves scatter more."},
    {"role": "user", "content": "And at sunset?"},
]

CASES = [
    ("chatml", CHATML, [SYSTEM] + CHAT, True),
    ("chatml-default-system", CHATML, CHAT, True),
    ("chatml-no-generation-prompt", CHATML, CHAT, False),
    ("llama3", LLAMA3, [SYSTEM] + CHAT, True),
    ("mistral", MISTRAL, CHAT, True),
    ("gemma", GEMMA, CHAT, True),
    ("features", FEATURES, [SYSTEM] + CHAT, True),
]

TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}


ROOT = pathlib.Path(__file__).resolve().parent.parent
HF_JSON = ROOT / "gpt" / "tests" / "fixtures" / "hf_json"

# (name, template, tokenizer fixture, special tokens to add, bos, eos, messages)
ID_CASES = [
    ("chatml", CHATML, "qwen", [], None, "<|im_end|>", [SYSTEM] + CHAT),
    (
        "llama3",
        LLAMA3,
        "llama3",
        ["<|start_header_id|>", "<|end_header_id|>"],
        "<|begin_of_text|>",
        "<|eot_id|>",
        [SYSTEM] + CHAT,
    ),
    ("mistral", MISTRAL, "llama2", [], "<s>", "</s>", CHAT),
    ("gemma", GEMMA, "metaspace", ["<start_of_turn>", "<end_of_turn>"], "<s>", "</s>", CHAT),
]


def id_case(name, template, tokenizer, specials, bos, eos, messages):
    spec = json.loads((HF_JSON / f"{tokenizer}.tokenizer.json").read_text())
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    added = json.loads(tok.to_str())["added_tokens"][len(spec["added_tokens"]) :]
    spec["added_tokens"] += added
    config = {"bos_token": bos, "eos_token": eos, "chat_template": template}
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        hf = AutoTokenizer.from_pretrained(folder)
        text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert ids == hf(text, add_special_tokens=False)["input_ids"], name
        assert ids != hf(text)["input_ids"] or bos is None, name
    return {
        "name": name,
        "tokenizer": f"{tokenizer}.tokenizer.json",
        "added_tokens": added,
        "tokenizer_config": config,
        "messages": messages,
        "text": text,
        "ids": ids,
    }


def main():
    cases = []
    for name, template, messages, add_generation_prompt in CASES:
        rendered = render_jinja_template(
            conversations=[messages],
            chat_template=template,
            add_generation_prompt=add_generation_prompt,
            **TOKENS,
        )
        text = rendered[0][0] if isinstance(rendered, tuple) else rendered[0]
        cases.append(
            {
                "name": name,
                "template": template,
                "messages": messages,
                "add_generation_prompt": add_generation_prompt,
                **TOKENS,
                "expected": text,
            }
        )
    out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat_templates.json"
    out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {out}")
    id_cases = [id_case(*case) for case in ID_CASES]
    out = ROOT / "tests" / "fixtures" / "chat_template_ids.json"
    out.write_text(json.dumps(id_cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(id_cases)} cases to {out}")


if __name__ == "__main__":
    main()
