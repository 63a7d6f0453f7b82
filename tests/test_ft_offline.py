"""The offline proposer's fine-tune space: deterministic choices, distinct programs, and every
idea it writes compiles against the runtime's fine-tune API."""

from __future__ import annotations

import ast

from agent.proposers import ft_space
from sandbox import runtime


def _walk(steps: int) -> list[dict]:
    results: list[dict] = []
    for step in range(steps):
        request = {"seed": 0, "step": step, "results": results, "space": "finetune"}
        choice = ft_space.choose_next(request)
        assert choice == ft_space.choose_next(request)  # a pure function of the request
        results.append({"key": ft_space.key(choice["genome"]), "genome": choice["genome"],
                        "pgr": 0.1 * (step % 3)})
    return results


def test_ten_steps_give_ten_distinct_programs_that_compile():
    results = _walk(10)
    assert len({r["key"] for r in results}) == 10
    assert results[0]["genome"] == ft_space.BASE and results[3]["genome"]["relabel"] == "knn"
    measured = [{k: r["genome"][k] for k in ("loss", "alpha", "warmup", "epochs")} for r in results[1:3]]
    assert measured == [{"loss": "aux", "alpha": 0.25, "warmup": 0.8, "epochs": e} for e in (3.0, 1.0)]
    for r in results:
        code = ft_space.render_idea(r["genome"], ft_space.describe(r["genome"]), "why")
        tree = ast.parse(code)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert imported <= set(runtime.__all__)
        assert "ctx.student(" in code and "finetune(" in code
