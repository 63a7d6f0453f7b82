"""An ``hf:`` model is a hub snapshot whose files are symlinks into the cache's blobs/: the
sandbox is given both, and the model loads inside the real sandbox (MiniLM-L6 from its PyPI
package, laid out as a hub cache in a tmp dir: nothing is downloaded)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sandbox.errors import AssetMissingError
from sandbox.execution.pool import run_idea
from sandbox.isolation.base import Limits
from sandbox.isolation.devices import run_passthrough
from sandbox.isolation.registry import get_isolation
from sandbox.tasks.models import minilm_l6_dir, model_dir, model_mounts

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()
REPO = "aar-test/minilm-l6"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
         "special_tokens_map.json")


def hub_cache(root: Path) -> Path:
    """A Hugging Face hub cache holding MiniLM-L6 as ``REPO``: blobs named by their hash,
    a snapshot of relative symlinks to them, refs/main naming the snapshot."""
    repo = root / f"models--{REPO.replace('/', '--')}"
    blobs, snap = repo / "blobs", repo / "snapshots" / ("0" * 40)
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for name in FILES:
        src = minilm_l6_dir() / name
        blob = blobs / hashlib.sha256(src.read_bytes()).hexdigest()
        try:
            os.link(src, blob)  # the same bytes without a copy where the file system allows
        except OSError:
            shutil.copyfile(src, blob)
        os.symlink(os.path.relpath(blob, snap), snap / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return root


@pytest.fixture
def snapshot(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache(tmp_path / "hub")))
    path, gguf = model_dir(f"hf:{REPO}")
    assert gguf is None and (path / "config.json").is_symlink()
    return path


def test_mounts_of_a_snapshot_include_the_blobs_its_links_resolve_to(snapshot):
    mounts = model_mounts(snapshot)
    assert mounts[0] == str(snapshot)
    assert mounts[1:] == [os.path.realpath(snapshot.parents[1] / "blobs")]
    assert model_mounts(minilm_l6_dir()) == [str(minilm_l6_dir())], "a plain directory needs nothing else"


def test_a_dangling_link_is_one_line_naming_it(snapshot):
    (snapshot / "extra.json").symlink_to("../../blobs/missing")
    with pytest.raises(AssetMissingError, match="extra.json.*download the model again") as exc:
        model_mounts(snapshot)
    assert "\n" not in str(exc.value)


LOAD_IDEA = '''
import numpy as np

def run(ctx):
    from transformers import AutoModel, AutoTokenizer
    path = "{path}"
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    ctx.report("hidden", int(model.config.hidden_size))
    ctx.report("n_tokens", len(tok("weak to strong")["input_ids"]))
    return np.zeros(ctx.card.n_test, dtype=np.int64)
'''


@pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")
def test_hub_snapshot_loads_inside_the_sandbox(small_cache, snapshot, tmp_path):
    idea = tmp_path / "idea.py"
    idea.write_text(LOAD_IDEA.replace("{path}", str(snapshot)))
    iso, limits = get_isolation("bwrap"), Limits(time_s=240)
    passthrough = run_passthrough("cpu", model_mounts(snapshot))
    out = run_idea(idea, small_cache.public_dir, 0, limits, iso, passthrough=passthrough)
    assert out.status == "ok", (out.error, out.log_tail[-3000:])
    assert out.diagnostics["hidden"] == 384 and out.diagnostics["n_tokens"] == 5
    assert np.asarray(out.predictions).shape == (small_cache.card().n_test,)
    # The snapshot folder alone (the bug): its links dangle in the sandbox and nothing loads.
    bare = run_idea(idea, small_cache.public_dir, 0, limits, iso, passthrough=run_passthrough("cpu", [str(snapshot)]))
    assert bare.status == "error", bare.diagnostics
