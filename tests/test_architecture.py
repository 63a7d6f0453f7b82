"""The dependency direction agent -> experiments -> sandbox, and the idea runtime's isolation
from anything that reads gold labels, checked on the source."""

import ast
from pathlib import Path

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
