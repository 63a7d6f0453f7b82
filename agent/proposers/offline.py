"""The offline proposer: evolutionary search over idea programs, no model needed.

Each decision is made by a pure function of the results so far (the "request"), routed
through ``tools.model_call`` like a model's answer, so sessions are recorded and replayable.
"""

from __future__ import annotations

import random
from typing import Any

from agent.proposers.base import ExperimentSpec, Proposer, ResearchTools, register_proposer
from agent.proposers.search_space import (
    BASE,
    FAMILIES,
    GENES,
    STARTS,
    crossover,
    describe,
    genome_key,
    mutate,
    render_idea,
)

WHY = {
    "layers": "intermediate layers may hold task structure the final pooled layer blurs",
    "temperature": "re-tempering the teacher changes how much its uncertainty is trusted",
    "cleaning": "strong-feature structure can correct the teacher's isolated mistakes",
    "k": "the neighbourhood size trades noise removal against over-smoothing",
    "blend": "how far to move from the teacher towards the structure-based labels",
    "keep": "a smaller confident share is cleaner but less diverse",
    "loss": "a loss that lets the student disagree with its teacher where it is confident",
    "alpha": "the strength of the student's own belief in the target",
    "warmup": "the student's own predictions are only trustworthy after some training",
    "hidden": "a non-linear head can use more of the strong representation",
    "dropout": "regularisation against memorising teacher noise",
    "epochs": "fewer epochs imitate fewer of the teacher's errors",
    "lr": "the step size shapes which patterns are learned first",
    "weight_decay": "simpler heads generalise past the teacher's mistakes",
    "early_stop": "stopping at peak weak-label agreement on held-out weak labels",
    "self_train_rounds": "retraining on the student's own predictions amplifies what it got right",
    "self_train_keep": "how much of the teacher to keep in each self-training round",
}


def _family_genes(direction: str | None) -> tuple[str | None, list[str]]:
    text = (direction or "").lower()
    for family, genes in FAMILIES.items():
        if family in text or family.replace("-", " ") in text:
            return family, genes
    return None, list(GENES)


def choose_next(request: dict[str, Any]) -> dict[str, Any]:
    """The search policy: the next genome from everything tried so far (deterministic)."""
    rng = random.Random(f"{request['seed']}:{request['step']}")
    family, genes = _family_genes(request.get("direction"))
    tried = {r["key"] for r in request["results"]}
    ranked = sorted((r for r in request["results"] if r["pgr"] is not None), key=lambda r: -r["pgr"])
    starts = STARTS if family is None else [{}] + [mutate(BASE, rng, genes, 1) for _ in range(3)]
    for start in starts:
        genome = {**BASE, **start}
        if genome_key(genome) not in tried:
            return {"genome": genome, "parent_id": None, "move": "start"}
    for _ in range(100):
        if not ranked:
            parent, genome, move = None, mutate(BASE, rng, genes, 2), "explore"
        elif rng.random() < 0.15:
            parent = ranked[0]
            genome, move = mutate(parent["genome"], rng, genes, 3), "explore"
        elif rng.random() < 0.25 and len(ranked) > 1:
            parent = ranked[0]
            other = ranked[rng.randrange(1, min(4, len(ranked)))]["genome"]
            genome, move = mutate(crossover(parent["genome"], other, rng), rng, genes, 1), "crossover"
        else:
            parent = ranked[rng.randrange(min(3, len(ranked)))]
            genome, move = mutate(parent["genome"], rng, genes, rng.choice([1, 1, 2])), "mutate"
        if genome_key(genome) not in tried:
            return {"genome": genome, "parent_id": parent and parent["attempt_id"], "move": move}
    return {"genome": mutate(BASE, rng, list(GENES), 4), "parent_id": None, "move": "random"}


def _hypothesis(genome: dict[str, Any], parent: dict[str, Any] | None, move: str) -> str:
    changed = [g for g in genome if (parent or BASE)[g] != genome[g]]
    reasons = "; ".join(f"{g}={genome[g]}: {WHY[g]}" for g in changed) or "the vanilla recipe as a reference"
    origin = "from the base recipe" if parent is None else f"{move} of an earlier attempt"
    return f"{origin.capitalize()}. {reasons}."


@register_proposer("offline")
class OfflineProposer(Proposer):
    """Evolutionary search over the harness library's idea programs."""

    def run(self, tools: ResearchTools) -> None:
        state = tools.load_state() or {"results": [], "step": 0}
        layers = tools.task_card["layers"]
        while True:
            request = {"kind": "offline-search", "seed": self.config.seed, "step": state["step"],
                       "direction": self.config.direction or tools.direction, "results": state["results"]}
            choice = tools.model_call(request, choose_next)
            genome = choice["genome"]
            parent = next((r for r in state["results"] if r["attempt_id"] == choice["parent_id"]), None)
            name = describe(genome)
            hypothesis = _hypothesis(genome, parent and parent["genome"], choice["move"])
            code = render_idea(genome, layers, f"Offline search: {name}", hypothesis)
            feedback = tools.run_experiment(
                ExperimentSpec(name=name, hypothesis=hypothesis, code=code, parent_id=choice["parent_id"]))
            pgr = (feedback.get("pgr") or {}).get("mean") if feedback.get("status") == "ok" else None
            state["results"].append({"key": genome_key(genome), "genome": genome, "pgr": pgr,
                                     "attempt_id": feedback.get("attempt_id")})
            state["step"] += 1
            tools.save_state(state)
