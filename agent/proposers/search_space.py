"""The offline proposer's search space: genomes, their mutations, and their idea files."""

from __future__ import annotations

import json
import pprint
import random
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("offline_idea.py.tmpl")

# Every gene and the values it may take. Families group genes into research directions.
GENES: dict[str, list[Any]] = {
    "layers": [["final"], ["layer_mid"], ["final", "layer_mid"], ["final", "layer_low"]],
    "norm": [True, False],
    "temperature": [0.5, 0.75, 1.0, 1.5],
    "cleaning": ["none", "knn", "propagate", "confident"],
    "k": [5, 10, 20, 40],
    "blend": [0.25, 0.5, 0.75, 1.0],
    "keep": [0.3, 0.5, 0.7],
    "loss": ["soft", "hard", "aux", "product", "bootstrap", "window"],
    "alpha": [0.25, 0.4, 0.5, 0.75, 1.0],
    "warmup": [0.1, 0.2, 0.3, 0.4],
    "hidden": [0, 0, 256, 512],
    "dropout": [0.0, 0.1, 0.3],
    "epochs": [10, 20, 40],
    "lr": [1e-3, 3e-3, 1e-2],
    "weight_decay": [1e-4, 1e-3, 1e-2],
    "early_stop": [False, True],
    "self_train_rounds": [0, 1, 2, 3],
    "self_train_keep": [0.3, 0.5, 0.7],
    "ensemble": ["none", "layers", "knn", "seeds"],
    "cotrain": [False, True],
    "prior": ["none", "weak"],
    "transduce": [0.0, 0.3, 0.6],
}

FAMILIES: dict[str, list[str]] = {
    "inside-the-strong-model": ["layers", "hidden", "dropout", "norm"],
    "clean-the-weak-labels": ["cleaning", "k", "blend", "keep", "temperature"],
    "structure-in-unlabeled-data": ["cleaning", "k", "blend", "self_train_rounds", "self_train_keep"],
    "noisy-teacher-losses": ["loss", "alpha", "warmup", "temperature"],
    "training-dynamics": ["epochs", "lr", "weight_decay", "early_stop"],
    "ensembles-and-views": ["ensemble", "cotrain", "layers", "transduce"],
    "class-priors": ["prior", "temperature", "cleaning", "keep"],
}

BASE: dict[str, Any] = {
    "layers": ["final"], "norm": True, "temperature": 1.0, "cleaning": "none", "k": 20, "blend": 0.5,
    "keep": 0.5, "loss": "soft", "alpha": 0.5, "warmup": 0.2, "hidden": 0, "dropout": 0.0,
    "epochs": 20, "lr": 3e-3, "weight_decay": 1e-4, "early_stop": False,
    "self_train_rounds": 0, "self_train_keep": 0.5,
    "ensemble": "none", "cotrain": False, "prior": "none", "transduce": 0.0,
}

# Known starting points (the built-in baselines' recipes, expressed as genomes).
STARTS: list[dict[str, Any]] = [
    {}, {"loss": "aux"}, {"loss": "product"}, {"cleaning": "knn"},
    {"loss": "window"}, {"early_stop": True, "epochs": 40},
]


# The built-in baselines as genomes (raw features, their own loss settings), so the search can
# start from the task's best baseline and change it a step at a time. Approximate where the
# template differs (bootstrap: its refit seeds; early stop: the split; confident: a share, not a threshold).
BASELINE_GENOMES: dict[str, dict[str, Any]] = {
    "vanilla_soft": {}, "vanilla_hard": {"loss": "hard"},
    "aux_confidence": {"loss": "aux", "alpha": 0.5, "warmup": 0.2},
    "product_posterior": {"loss": "product", "alpha": 1.0, "warmup": 0.3},
    "confidence_window": {"loss": "window", "alpha": 0.4, "warmup": 0.3},
    "label_propagation": {"cleaning": "propagate", "k": 10, "blend": 1.0},
    "probe_relabel": {"cleaning": "knn", "k": 20, "blend": 1.0},
    "bootstrap_self_training": {"self_train_rounds": 2, "self_train_keep": 0.5},
    "weak_val_early_stop": {"early_stop": True, "epochs": 40},
    "confident_only": {"cleaning": "confident", "keep": 0.5},
}

# One change each, tried on top of the best baseline before the open search: what the idea
# space adds to the baselines (views, transduction, priors, ensembles, regularisation).
ADDONS: list[dict[str, Any]] = [
    {"transduce": 0.3}, {"prior": "weak"}, {"ensemble": "seeds"}, {"ensemble": "knn"}, {"ensemble": "layers"},
    {"cotrain": True}, {"transduce": 0.6}, {"norm": True}, {"weight_decay": 1e-3}, {"temperature": 0.75},
]


def baseline_genome(name: str) -> dict[str, Any] | None:
    """The genome that writes (nearly) the same program as built-in baseline ``name``."""
    genes = BASELINE_GENOMES.get(name)
    return None if genes is None else normalize({**BASE, "norm": False, **genes})


def baseline_starts(baselines: list[dict[str, Any]], space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Starting points from the task's own baselines (best dev PGR first): the best one as it is,
    the best one plus each add-on, then the best combined with the runner-up (its loss or cleaning)."""
    ranked = sorted((b for b in baselines if b.get("pgr") is not None and b.get("name") in BASELINE_GENOMES),
                    key=lambda b: -b["pgr"])
    if not ranked:
        return []
    own = BASELINE_GENOMES[ranked[0]["name"]]
    best = baseline_genome(ranked[0]["name"]) or dict(BASE)
    starts = [best] + [{**best, **addon} for addon in ADDONS]
    for other in ranked[1:4]:  # a runner-up that changes other genes (e.g. a loss and a cleaning)
        genes = BASELINE_GENOMES[other["name"]]
        if genes and not set(genes) & set(own):
            starts.append({**best, **genes})
    fits = [normalize(s) for s in starts if all(v in space[g] for g, v in s.items() if g != "layers")]
    return [s for i, s in enumerate(fits) if s not in fits[:i]]


def adapt_space(card: dict[str, Any] | None, baselines: list[dict[str, Any]] | None = None,
                ) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """The genes and starting points for one task, from its card (classes, sizes, layers):
    small unlabeled sets get smaller neighbourhoods and heads, tasks with one cached layer lose
    the view genes, binary tasks start with class-prior correction, many-class tasks with
    structure-based cleaning. Given the task's baselines (name, dev PGR), the search starts from
    the best of them and its one-step changes (``baseline_starts``) before the generic starts.
    Without a card: the full space and the built-in starts."""
    if not card:
        return GENES, STARTS
    genes = {g: list(v) for g, v in GENES.items()}
    n_classes, n_unl = len(card.get("classes") or [0, 0]), int(card.get("n_unlabeled") or 0)
    if n_unl and n_unl < 1500:
        genes["k"], genes["hidden"] = [5, 10, 20], [0, 0, 128]
    if len(card.get("layers") or ["final"]) < 2:
        for gene in ("layers", "cotrain"):
            genes[gene] = [BASE[gene]]
        genes["ensemble"] = ["none", "knn", "seeds"]
    starts: list[dict[str, Any]] = [{}, {"loss": "aux"}, {"cleaning": "knn"}]
    if n_classes <= 2:
        starts += [{"prior": "weak"}, {"transduce": 0.3}, {"loss": "product"}]
    else:
        starts += [{"ensemble": "knn"}, {"cleaning": "propagate", "blend": 0.5}, {"prior": "weak", "loss": "aux"}]
    if len(genes["cotrain"]) > 1:
        starts += [{"cotrain": True}, {"ensemble": "layers", "loss": "aux"}]
    generic = [s for s in starts if all(v in genes[g] for g, v in s.items())]
    return genes, baseline_starts(baselines or [], genes) + generic


def resolve_layers(layers: list[str], available: list[str]) -> list[str]:
    """Map the abstract 'layer_low'/'layer_mid' to concrete cached layers of this task."""
    inner = [name for name in available if name != "final"]
    pick = {"final": "final", "layer_low": inner[0] if inner else "final",
            "layer_mid": inner[len(inner) // 2] if inner else "final"}
    out: list[str] = []
    for name in layers:
        concrete = pick.get(name, name)
        if concrete not in out:
            out.append(concrete)
    return out


def genome_key(genome: dict[str, Any]) -> str:
    return json.dumps(genome, sort_keys=True)


# A gene only matters when the gene it refines has one of these values.
DEPENDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "k": ("cleaning", ("knn", "propagate")), "blend": ("cleaning", ("knn", "propagate")),
    "keep": ("cleaning", ("confident",)), "alpha": ("loss", ("aux", "product", "bootstrap", "window")),
    "warmup": ("loss", ("aux", "product", "window")), "dropout": ("hidden", (256, 512)),
    "self_train_keep": ("self_train_rounds", (1, 2)),
}


def active_genes(genome: dict[str, Any], genes: list[str]) -> list[str]:
    """The genes whose change would change the program (no silent no-op mutations)."""
    return [g for g in genes if g not in DEPENDS or genome[DEPENDS[g][0]] in DEPENDS[g][1]]


def normalize(genome: dict[str, Any]) -> dict[str, Any]:
    """Inactive genes back to their base values, so two genomes that write the same program
    are the same genome (no attempt is spent re-running an identical idea)."""
    return {g: v if g not in DEPENDS or genome[DEPENDS[g][0]] in DEPENDS[g][1] else BASE[g]
            for g, v in genome.items()}


def mutate(genome: dict[str, Any], rng: random.Random, genes: list[str], n_changes: int,
           space: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    space = space or GENES
    child = dict(genome)
    for _ in range(n_changes):
        options_genes = [g for g in (active_genes(child, genes) or genes) if len(space[g]) > 1] or genes
        gene = rng.choice(options_genes)
        values = [v for v in space[gene] if v != child[gene]] or space[gene]
        child[gene] = rng.choice(values)
    return child


def crossover(a: dict[str, Any], b: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {gene: (a if rng.random() < 0.5 else b)[gene] for gene in BASE}


def describe(genome: dict[str, Any]) -> str:
    """A short readable name: the genes that differ from the vanilla base."""
    diffs = [f"{k}={_short(v)}" for k, v in genome.items() if BASE[k] != v]
    return ", ".join(diffs) or "vanilla"


def _short(value: Any) -> str:
    return "+".join(value) if isinstance(value, list) else str(value)


def render_idea(genome: dict[str, Any], available_layers: list[str], title: str, hypothesis: str) -> str:
    config = dict(genome, layers=resolve_layers(genome["layers"], available_layers))
    body = pprint.pformat(config, sort_dicts=True, width=96)
    return (TEMPLATE.read_text().replace("{title}", title).replace("{hypothesis}", hypothesis)
            .replace("{config}", body))


def config_from_code(code: str) -> dict[str, Any] | None:
    """The CONFIG literal of an idea file written from the template, or None."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONFIG" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None
