"""The offline proposer's search space on fine-tune tasks (``card.kind == "finetune"``):
loss, LoRA vs all weights, step size, batch, epochs, weak-val early stopping, and relabelling
the weak labels over cached features before fine-tuning. Kept apart from the feature-head
space (search_space.py) so each stays small; the policy is the same mutate-the-best search."""

from __future__ import annotations

import json
import pprint
import random
from pathlib import Path
from typing import Any

from experiments.ranking import rank_key
from experiments.ranking import ranked as rank

TEMPLATE = Path(__file__).with_name("offline_ft_idea.py.tmpl")

GENES: dict[str, list[Any]] = {
    "loss": ["soft", "hard", "aux", "product", "bootstrap", "window"],
    "alpha": [0.25, 0.5, 0.75],
    "warmup": [0.1, 0.2, 0.4, 0.8],
    "lora_rank": [0, 4, 8, 16],  # 0: all weights train
    "lr_scale": [0.5, 1.0, 2.0],
    # The one-epoch recipe is under-trained; 3 epochs of 600 rows is ~130 s a seed at 1 thread on
    # 2 idle cores, inside the 300 s budget (README: fine-tune recipes, 2026-12-08)
    "epochs": [0.5, 1.0, 2.0, 3.0],
    "batch_size": [8, 16, 32],
    "early_stop": [False, True],
    "relabel": ["none", "knn"],
    "blend": [0.25, 0.5, 0.75],
}
BASE: dict[str, Any] = {"loss": "soft", "alpha": 0.5, "warmup": 0.2, "lora_rank": 0, "lr_scale": 1.0,
                        "epochs": 1.0, "batch_size": 16, "early_stop": False, "relabel": "none", "blend": 0.5}
# Measured on two fine-tune tasks (6 seeds, held-out PGR, benchmarks/ft_aux_recipes.py): aux-confidence
# ramped to 0.25 by 80% of training beats vanilla at 3 epochs on both (+0.125 p 0.015, +0.188 p 0.0004);
# at one epoch it is level on one and behind on the other, where one-epoch vanilla is the better
# start. Both are starts; LoRA (behind vanilla in the baselines) is reached by mutation.
STARTS: list[dict[str, Any]] = [{}, {"loss": "aux", "alpha": 0.25, "warmup": 0.8, "epochs": 3.0},
                                {"loss": "aux", "alpha": 0.25, "warmup": 0.8}, {"relabel": "knn"}]
DEPENDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "alpha": ("loss", ("aux", "product", "bootstrap", "window")),
    "warmup": ("loss", ("aux", "product", "window")), "blend": ("relabel", ("knn",)),
}
WHY = {
    "loss": "a loss that lets the fine-tuned student disagree with its teacher where it is confident",
    "alpha": "the strength of the student's own belief in the target",
    "warmup": "the student's own predictions are only trustworthy after some training",
    "lora_rank": "training a low-rank adapter instead of all weights limits how much teacher noise is absorbed",
    "lr_scale": "the step size decides which patterns the strong model picks up first",
    "epochs": "the one-epoch recipe is under-trained, yet every extra step imitates more of the teacher's errors",
    "batch_size": "smaller batches mean more, noisier updates in the same pass",
    "early_stop": "keep the weights at peak agreement with held-out weak labels",
    "relabel": "the strong model's frozen features can correct the teacher before fine-tuning",
    "blend": "how far to move the targets towards the feature-space neighbours' labels",
}


def key(genome: dict[str, Any]) -> str:
    return json.dumps(genome, sort_keys=True)


def normalize(genome: dict[str, Any]) -> dict[str, Any]:
    return {g: v if g not in DEPENDS or genome[DEPENDS[g][0]] in DEPENDS[g][1] else BASE[g]
            for g, v in genome.items()}


def mutate(genome: dict[str, Any], rng: random.Random, n_changes: int) -> dict[str, Any]:
    child = dict(genome)
    for _ in range(n_changes):
        active = [g for g in GENES if g not in DEPENDS or child[DEPENDS[g][0]] in DEPENDS[g][1]]
        gene = rng.choice(active)
        child[gene] = rng.choice([v for v in GENES[gene] if v != child[gene]])
    return normalize(child)


def choose_next(request: dict[str, Any]) -> dict[str, Any]:
    """Starting points first, then mutations of one of the three best so far (deterministic)."""
    rng = random.Random(f"{request['seed']}:{request['step']}")
    tried = {r["key"] for r in request["results"]}
    for start in STARTS:
        genome = normalize({**BASE, **start})
        if key(genome) not in tried:
            return {"genome": genome, "parent": None, "move": "start"}
    results = request["results"]  # ranked as everywhere (experiments/ranking.py); rejected ones never parent
    ranked = rank(range(len(results)), lambda i: None if results[i].get("rejected")
                  else rank_key(results[i]["pgr"], results[i].get("ci95")))
    for _ in range(100):
        parent = ranked[rng.randrange(min(3, len(ranked)))] if ranked else None
        source = request["results"][parent]["genome"] if parent is not None else BASE
        genome = mutate(source, rng, rng.choice([1, 1, 2]))
        if key(genome) not in tried:
            return {"genome": genome, "parent": parent, "move": "mutate"}
    return {"genome": mutate(BASE, rng, 4), "parent": None, "move": "random"}


def describe(genome: dict[str, Any]) -> str:
    return "ft: " + (", ".join(f"{k}={v}" for k, v in genome.items() if BASE[k] != v) or "vanilla")


def hypothesis(genome: dict[str, Any], parent: dict[str, Any] | None, move: str) -> str:
    changed = [g for g in genome if (parent or BASE)[g] != genome[g]]
    reasons = "; ".join(f"{g}={genome[g]}: {WHY[g]}" for g in changed) or "the vanilla fine-tune as a reference"
    origin = "from the vanilla fine-tune" if parent is None else f"{move} of an earlier attempt"
    return f"{origin.capitalize()}. {reasons}."


def render_idea(genome: dict[str, Any], title: str, why: str) -> str:
    body = pprint.pformat(genome, sort_dicts=True, width=96)
    return TEMPLATE.read_text().replace("{title}", title).replace("{hypothesis}", why).replace("{config}", body)
