"""The novelty gate: an idea that repeats an earlier attempt is refused before it is run.

Two ideas are the same when their code is the same once comments, docstrings and layout are
gone and a ``CONFIG`` literal is compared as data (so ``0.50`` and ``0.5`` or a reordered dict
are one configuration). The refusal points at the earlier attempt, so a model can look at it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from dataclasses import dataclass, field

from experiments.schemas import Attempt

# Attempts that never ran their code do not make it "tried".
NOT_TRIED = ("abandoned",)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body:
            continue
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]


def _canonical_config(tree: ast.Module) -> None:
    """Replace a literal ``CONFIG = {...}`` by its canonical JSON text (data, not spelling)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONFIG" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return
            node.value = ast.Constant(json.dumps(value, sort_keys=True, default=str))


@functools.lru_cache(maxsize=64)  # an attempt's code is keyed twice: checked, then added
def code_key(code: str) -> str:
    """A key equal for ideas that differ only in comments, docstrings, layout or config spelling."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        text = "\n".join(line.split("#", 1)[0].rstrip() for line in code.splitlines())
        return "text:" + hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
    _strip_docstrings(tree)
    _canonical_config(tree)
    return "ast:" + hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


@dataclass
class Duplicate:
    """An earlier attempt the new idea repeats."""

    attempt_id: str
    name: str
    pgr: float | None

    def message(self) -> str:
        score = "" if self.pgr is None else f", dev PGR {self.pgr:+.3f}"
        return (f"refused before running: the same code/configuration as attempt {self.attempt_id} "
                f"({self.name}{score}); no attempt was spent. Look at it with show_attempt and change the idea.")


@dataclass
class NoveltyGate:
    """Keys of every attempt tried so far in a session."""

    seen: dict[str, Duplicate] = field(default_factory=dict)

    @classmethod
    def of(cls, attempts: list[Attempt]) -> NoveltyGate:
        gate = cls()
        for attempt in attempts:
            gate.add(attempt)
        return gate

    def add(self, attempt: Attempt, workspace: str | None = None) -> None:
        """Remember an attempt's code; ``workspace``: the Python files it could import (a
        multi-file idea is its entry and its modules together). An attempt that ran with a
        workspace not given here (read back on resume) is not keyed: its helpers are unknown."""
        if attempt.status in NOT_TRIED or not attempt.code:
            return
        if workspace is None and attempt.extra.get("workspace", {}).get("modules"):
            return
        pgr = attempt.result.pgr.mean if attempt.result and attempt.result.pgr else None
        self.seen.setdefault(_key(attempt.code, workspace), Duplicate(attempt.attempt_id, attempt.name, pgr))

    def check(self, code: str, workspace: str | None = None) -> Duplicate | None:
        return self.seen.get(_key(code, workspace))


def _key(code: str, workspace: str | None) -> str:
    return code_key(code) if not workspace else code_key(code) + ":" + code_key(workspace)
