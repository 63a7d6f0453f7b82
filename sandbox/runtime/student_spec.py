"""What a fine-tune task's student is (persisted in the card); torch-free, so the harness and
the card can name it without loading torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LoraSpec(BaseModel):
    """A LoRA adapter configuration (peft). ``targets=None`` takes peft's default modules."""

    rank: int = Field(8, ge=1, description="Adapter rank r.")
    alpha: float = Field(16.0, gt=0, description="Scaling numerator (lora_alpha).")
    targets: list[str] | None = Field(None, description="Module names to adapt; None = peft default.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")


class StudentSpec(BaseModel):
    """How to load the task's strong model as a trainable student. Persisted in ``card.json``."""

    family: Literal["encoder", "causal"] = Field(
        description="'encoder': classification head on an encoder; 'causal': label-token scoring.")
    name: str = Field(description="Human-readable model name, e.g. 'all-MiniLM-L6-v2'.")
    model_dir: str = Field(
        description="Host directory of the weights; mounted read-only at the same path in the sandbox.")
    gguf_file: str | None = Field(None, description="A GGUF file inside model_dir to load, if any.")
    label_words: list[str] = Field(
        default_factory=list, description="Causal LMs: one word per class, scored as the next token.")
    cue: str = Field("\nAnswer:", description="Causal LMs: text appended to every input before scoring.")
    max_len: int = Field(128, description="Default maximum tokens per input.")
    chat_template: bool | None = Field(
        None, description="Causal LMs: wrap text + cue as a user turn of the model's chat template "
        "(the reference benchmark does for chat models); None or False: plain text.")
    vanilla_lora: LoraSpec | None = Field(
        None, description="The adapter the vanilla recipe (and so the ceiling) trains; None: all weights.")
