"""How a causal-LM student reads a task's input: the text, the task's cue, and for chat models
(under the reference benchmark's template) the model's own chat template around both.

The reference weak-to-strong benchmark prompts ``Question: {prompt}\\nAnswer A: {first}\\nAnswer B:
{second}\\nLabel:`` (label tokens ``A``/``B``) or ``Question: {question}\\nAnswer: {choice}\\nLabel:``
(``False``/``True``): as a user turn of the chat template for chat models, as plain text for base
models. The task loader renders everything up to the cue (``sandbox/tasks/files.py``); this
module adds the cue and the chat turn. Torch-free: the harness names it without loading torch.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.runtime.student_spec import StudentSpec

# Chat models by name, as the reference tells them apart (Qwen1.5-0.5B-Chat vs Qwen3-4B-Base).
_CHAT_NAME = re.compile(r"chat|instruct", re.IGNORECASE)


def is_chat_model(ref: str) -> bool:
    """Whether a model reference (registered name, ``hf:<id>`` or directory) names a chat model."""
    return bool(_CHAT_NAME.search(ref.rstrip("/").rsplit("/", 1)[-1]))


def student_input(text: str, spec: StudentSpec, tokenizer: Any) -> str:
    """The exact string a causal-LM student is given for one input (its label word comes next)."""
    prompt = text + spec.cue
    if not spec.chat_template:
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def label_prefix(spec: StudentSpec) -> str:
    """What precedes a label word: a space after ``Label:`` in plain text; nothing at the start
    of a chat model's answer turn."""
    return "" if spec.chat_template else " "
