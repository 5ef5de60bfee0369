#!/usr/bin/env python3
"""Writes `tests/fixtures/chat_templates.json`: chat templates in the styles
open models ship (ChatML as Qwen uses it, Llama 3, Mistral's [INST], Gemma's
turns, and one exercising the Jinja features templates lean on), each with a
conversation and the text `transformers` renders for it, which
`gpt/src/chat_template.rs` is tested against.

The text comes from `transformers.utils.chat_template_utils.render_jinja_template`,
the function `tokenizer.apply_chat_template(messages, tokenize=False,
add_generation_prompt=...)` calls, so it is rendered exactly as transformers
renders (its sandboxed Jinja environment with trim_blocks and lstrip_blocks,
its `raise_exception`, `tojson` and `strftime_now`).

Requirements: `pip install transformers jinja2`. Run from anywhere:

    python3 scripts/make_chat_template_fixtures.py
"""

import json
import pathlib

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


if __name__ == "__main__":
    main()
