"""Shared fixtures: a small wordnet-10 cache built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SMALL = "200,600,200,200"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache root for the whole session (set in the environment so CLI runs share it)."""
    root = Path(os.environ.get("AAR_TEST_CACHE_DIR") or tmp_path_factory.mktemp("aar-cache"))
    os.environ["AAR_CACHE_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def small_cache(cache_dir: Path):
    from sandbox.cache.task_cache import open_cache
    from sandbox.tasks import SplitSizes, get_task

    spec = get_task("wordnet-10", SplitSizes.parse(SMALL))
    return open_cache(spec, n_weak_seeds=5, show_progress=False, root=cache_dir)


@pytest.fixture(scope="session")
def evaluator(small_cache):
    from sandbox.scoring.evaluator import Evaluator

    return Evaluator(small_cache, time_budget_s=120)


@pytest.fixture
def idea_file(tmp_path: Path):
    """Write an idea file from source text and return its path."""

    def write(source: str, name: str = "idea.py") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path

    return write
