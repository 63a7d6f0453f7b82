"""The dependency direction agent -> experiments -> sandbox, and the idea runtime's isolation
import pytest

from anything that reads gold labels, checked on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _project_imports(package: str) -> dict[str, set[str]]:
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        mods = {m for m in _imports(path) if m.split(".")[0] in {"agent", "experiments", "sandbox"}}
        out[str(path.relative_to(ROOT))] = mods
    return out


def test_sandbox_imports_neither_experiments_nor_agent():
    bad = {f: m for f, m in _project_imports("sandbox").items()
           if any(x.split(".")[0] in {"agent", "experiments"} for x in m)}
    assert not bad


def test_experiments_does_not_import_agent():
    bad = {f: m for f, m in _project_imports("experiments").items()
           if any(x.split(".")[0] == "agent" for x in m)}
    assert not bad


def test_idea_runtime_imports_only_itself():
    bad = {f: m for f, m in _project_imports("sandbox/runtime").items()
           if any(not x.startswith("sandbox.runtime") for x in m)}
    assert not bad


def test_baseline_ideas_import_only_the_runtime():
    for path in (ROOT / "sandbox" / "baselines").glob("*.py"):
        mods = {m for m in _imports(path) if m.split(".")[0] == "sandbox"}
        assert all(m.startswith("sandbox.runtime") for m in mods), path


def test_every_registry_refuses_an_unknown_name_with_one_error_type_naming_the_known_ones():
    from agent.proposers.base import ProposerConfig, get_proposer
    from sandbox.cache.encoders import get_encoder
    from sandbox.errors import UnknownNameError
    from sandbox.execution.base import ExecutorConfig, ExecutorOptions
    from sandbox.execution.registry import get_executor
    from sandbox.isolation.registry import get_isolation
    from sandbox.tasks import get_task

    lookups = {"task": lambda: get_task("nope"), "encoder": lambda: get_encoder("nope"),
               "isolation": lambda: get_isolation("nope"),
               "executor": lambda: get_executor(ExecutorOptions(ExecutorConfig(name="nope"))),
               "proposer": lambda: get_proposer("nope", ProposerConfig())}
    known = {"task": "wordnet-10", "encoder": "minilm-l6", "isolation": "bwrap", "executor": "local",
             "proposer": "offline"}
    for kind, lookup in lookups.items():
        with pytest.raises(UnknownNameError) as exc:
            lookup()
        message = str(exc.value)
        assert message.startswith(f"unknown {kind} 'nope'") and known[kind] in message and "\n" not in message
