"""The offline proposer: evolutionary search over idea programs, no model needed.

Each decision is made by a pure function of the results so far (the "request"), routed
through ``tools.model_call`` like a model's answer, so sessions are recorded and replayable.
"""

from __future__ import annotations

import json
import random
from typing import Any

from agent.proposers import ft_space
from agent.proposers.base import (
    ExperimentSpec,
    Feedback,
    Proposer,
    ResearchTools,
    register_proposer,
)
from agent.proposers.search_space import (
    BASE,
    FAMILIES,
    GENES,
    adapt_space,
    crossover,
    describe,
    genome_key,
    mutate,
    normalize,
    render_idea,
)
from experiments.ranking import RankKey, rank_key
from experiments.ranking import ranked as rank
from experiments.steering import Delivery
from sandbox.errors import HarnessError

GENOME_PREFIX = "genome: "
# The one look at the data the offline search takes before its first experiment (an analysis run,
# never scored): how often a kNN vote over the strong features agrees with the weak teacher.
AGREEMENT_ANALYSIS = """
import numpy as np
from sandbox.runtime import knn_probe

x = np.asarray(ctx.features("unlabeled"))
vote = knn_probe(x, ctx.weak_soft, x, k=10, exclude_self=True)
agreement = float((vote.argmax(1) == ctx.weak_soft.argmax(1)).mean())
print(f"kNN (k=10) vote agrees with the weak teacher on {agreement:.1%} of {len(x)} unlabeled rows")
ctx.report("knn_teacher_agreement", agreement)
"""

WHY = {
    "layers": "intermediate layers may hold task structure the final pooled layer blurs",
    "norm": "unit-length features weigh every input alike; raw ones keep the encoder's own scale",
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
    "ensemble": "averaging views, methods or differently seeded heads cancels errors they do not share",
    "cotrain": "a second view of the strong model learns from the first one's labels, not only the teacher's",
    "prior": "the student drifts from the class balance the teacher's labels estimate; correct it",
    "transduce": "test inputs that are neighbours should get similar labels",
}


# Words of a (vague) starting direction that point to a region of the search space.
DIRECTION_WORDS = {
    "inside-the-strong-model": ("layer", "inside the strong model", "representation"),
    "clean-the-weak-labels": ("reweight", "filter", "trust", "clean", "label propagation", "neighbour", "knn"),
    "structure-in-unlabeled-data": ("structure", "similar inputs", "cluster", "self-training",
                                    "own predictions"),
    "noisy-teacher-losses": ("noisy channel", "disagree", "confident", "noisy"),
    "training-dynamics": ("distillation", "simplicity", "soft targets", "early", "simplest"),
    "ensembles-and-views": ("ensemble", "co-train", "views", "transductive"),
    "class-priors": ("prior", "class balance", "calibrat"),
}


def _family_genes(direction: str | None) -> tuple[str | None, list[str]]:
    """The search region a direction points to: a family's genes, or every gene."""
    text = (direction or "").lower()
    for family, genes in FAMILIES.items():
        words = (family, family.replace("-", " "), *DIRECTION_WORDS.get(family, ()))
        if any(word in text for word in words):
            return family, genes
    return None, list(GENES)


def rank_of(result: dict[str, Any]) -> RankKey | None:
    """What ranks results (experiments/ranking.py); a result a human rejected ranks not at all,
    so it never parents a later genome."""
    return None if result.get("rejected") else rank_key(result["pgr"], result.get("ci95"))


def direction_receipt(direction: str | None, finetune: bool = False) -> str:
    """What the offline search makes of a starting direction, in words (never silently ignored)."""
    if not direction:
        return "offline search: no direction; it searches every gene"
    family, genes = _family_genes(direction)
    if family is None or finetune:
        return (f"offline search: direction {direction[:80]!r} does not map onto its idea space (families: "
                f"{', '.join(FAMILIES)}); it searches every gene")
    return f"offline search: direction {direction[:80]!r} -> the {family} genes ({', '.join(genes)})"


def choose_next(request: dict[str, Any]) -> dict[str, Any]:
    """The search policy: the next genome from everything tried so far (deterministic)."""
    card = request.get("card")
    rng = random.Random(f"{request['seed']}:{request['step']}:{(card or {}).get('key', '')}")
    space, starts_for_task = adapt_space(card, request.get("baselines"))
    family, genes = _family_genes(request.get("direction"))
    genes = [g for g in genes if len(space[g]) > 1] or genes
    tried = {r["key"] for r in request["results"]}
    shared = [r for r in request.get("shared", []) if set(r.get("genome", {})) == set(BASE)]
    results = [{**r, "genome": {**BASE, **r["genome"]}, "index": i} for i, r in enumerate(request["results"])]
    ranked = rank(results, rank_of)
    starts = starts_for_task if family is None else [{}] + [mutate(BASE, rng, genes, 1, space) for _ in range(3)]
    blend = cleaning_blend((request.get("analysis") or {}).get("knn_teacher_agreement"), space["blend"])
    if blend is not None:  # the analysis run sets how far kNN cleaning moves the teacher's labels
        starts = [{**s, "blend": blend} if s.get("cleaning") == "knn" and "blend" not in s else s for s in starts]
    for start in starts:
        genome = normalize({**BASE, **start})
        if genome_key(genome) not in tried:
            return {"genome": genome, "parent": None, "move": "start"}
    for _ in range(100):
        if not ranked:
            parent, genome, move = None, mutate(BASE, rng, genes, 2, space), "explore"
        elif rng.random() < 0.15:
            parent = ranked[0]
            genome, move = mutate(parent["genome"], rng, genes, 3, space), "explore"
        elif rng.random() < 0.25 and (len(ranked) > 1 or shared):
            parent = ranked[0]
            partners = [r["genome"] for r in ranked[1:4]] + [r["genome"] for r in shared]
            other = partners[rng.randrange(len(partners))]
            genome, move = mutate(crossover(parent["genome"], other, rng), rng, genes, 1, space), "crossover"
        else:
            parent = ranked[rng.randrange(min(3, len(ranked)))]
            genome, move = mutate(parent["genome"], rng, genes, rng.choice([1, 1, 2]), space), "mutate"
        genome = normalize(genome)
        if genome_key(genome) not in tried:
            return {"genome": genome, "parent": parent and parent["index"], "move": move}
    return {"genome": mutate(BASE, rng, list(GENES), 4, space), "parent": None, "move": "random"}


def cleaning_blend(agreement: float | None, choices: list[float]) -> float | None:
    """The kNN cleaning strength from the teacher/kNN agreement: where the vote disagrees with
    the teacher more often, there is more for the structure to correct, so move further towards
    it (blend 2 x disagreement, the nearest allowed value); None without a measurement."""
    if agreement is None or not choices:
        return None
    want = min(1.0, max(0.0, 2.0 * (1.0 - float(agreement))))
    return min(choices, key=lambda c: (abs(c - want), c))


def _hypothesis(genome: dict[str, Any], parent: dict[str, Any] | None, move: str) -> str:
    changed = [g for g in genome if (parent or BASE).get(g, BASE[g]) != genome[g]]
    reasons = "; ".join(f"{g}={genome[g]}: {WHY[g]}" for g in changed) or "the vanilla recipe as a reference"
    origin = "from the base recipe" if parent is None else f"{move} of an earlier attempt"
    return f"{origin.capitalize()}. {reasons}."


@register_proposer("offline")
class OfflineProposer(Proposer):
    """Evolutionary search over the harness library's idea programs."""

    def run(self, tools: ResearchTools) -> None:
        state = tools.load_state() or {"results": [], "step": 0}
        card = tools.task_card
        layers = card["layers"]
        finetune = card.get("kind") == "finetune"  # its own space: agent/proposers/ft_space.py
        if state["step"] == 0:
            tools.notice(direction_receipt(self.config.direction or tools.direction, finetune))
        if "analysis" not in state and not finetune:
            state["analysis"] = self._look_at_the_data(tools)
            tools.save_state(state)
        while True:
            receipts = [self._receive(d, state, finetune) for d in tools.inbox()]
            for text in receipts:
                tools.notice(text)
            request = {"kind": "offline-search", "seed": self.config.seed, "step": state["step"],
                       "direction": state.get("steered") or self.config.direction or tools.direction,
                       # session-independent (no attempt ids), so a replay sends the same requests
                       "results": [self._seen(r) for r in state["results"]],
                       "card": {"key": card.get("cache_key"), "classes": card.get("classes"),
                                "n_unlabeled": card.get("n_unlabeled"), "layers": layers,
                                "kind": card.get("kind", "features")},
                       "shared": self._shared_genomes(tools),
                       # the built-in baselines' dev PGR: the search starts from the best of them
                       "baselines": [{"name": b.name, "pgr": b.pgr} for b in tools.baselines],
                       # what the analysis run measured (it picks the kNN cleaning strength)
                       "analysis": {"knn_teacher_agreement": (state.get("analysis") or {}).get("agreement")}}
            if finetune:
                request["space"] = "finetune"
            if receipts:  # recorded with the call: what arrived and what the search does with it
                request["steering"] = receipts
            choice = tools.model_call(request, ft_space.choose_next if finetune else choose_next)
            genome = choice["genome"]
            parent = None if choice["parent"] is None else state["results"][choice["parent"]]
            parent_id = parent and parent["attempt_id"]
            if finetune:
                name = ft_space.describe(genome)
                hypothesis = ft_space.hypothesis(genome, parent and parent["genome"], choice["move"])
                code = ft_space.render_idea(genome, f"Offline search: {name}", hypothesis)
            else:
                name = describe(genome)
                hypothesis = _hypothesis(genome, parent and parent["genome"], choice["move"])
                code = render_idea(genome, layers, f"Offline search: {name}", hypothesis)
            feedback = tools.run_experiment(
                ExperimentSpec(name=name, hypothesis=hypothesis, code=code, parent_id=parent_id))
            pgr = feedback.pgr
            key = ft_space.key(genome) if finetune else genome_key(genome)
            ci95 = feedback.result.pgr_ci95 if pgr is not None and feedback.result else None
            state["results"].append({"key": key, "genome": genome, "pgr": pgr, "ci95": ci95,
                                     "attempt_id": feedback.attempt_id})
            state["step"] += 1
            self._maybe_post(tools, state, name, feedback, genome, pgr)
            tools.save_state(state)

    @staticmethod
    def _receive(item: Delivery, state: dict[str, Any], finetune: bool) -> str:
        """Act on one review or message where the search can, and say what it did."""
        if item.kind == "review":
            hits = [r for r in state["results"] if r.get("attempt_id") == item.attempt_id]
            for r in hits:
                r["rejected"] = item.verdict == "reject"
            if item.verdict != "reject":
                return f"received: review accepting {item.attempt_id}; noted, the search goes on unchanged"
            return (f"received: rejection of {item.attempt_id} ({item.text[:80]}); it no longer parents any "
                    "genome and its genome is not proposed again" if hits else
                    f"received: rejection of {item.attempt_id}, not one of this search's results; nothing to change")
        family, _ = _family_genes(item.text)
        if family is None or finetune:
            return (f"received: message {item.text[:80]!r}; the offline search cannot map it onto its idea space "
                    f"(families: {', '.join(FAMILIES)}), so it goes on unchanged")
        state["steered"] = item.text
        return f"received: message {item.text[:80]!r}; the search now mutates only the {family} genes"

    @staticmethod
    def _seen(result: dict[str, Any]) -> dict[str, Any]:
        """What the search policy sees of one result (no attempt ids: a replay sends the same
        requests); ``rejected`` only where a human rejected it, so older recordings still match."""
        seen = {k: result.get(k) for k in ("key", "genome", "pgr", "ci95")}
        return {**seen, "rejected": True} if result.get("rejected") else seen

    @staticmethod
    def _look_at_the_data(tools: ResearchTools) -> dict[str, Any]:
        """One analysis run: the teacher/kNN agreement (None when the session offers no analysis
        runs, its analysis time is spent, or the run failed)."""
        if not hasattr(tools, "run_analysis"):
            return {"agreement": None}
        try:
            reply = tools.run_analysis("teacher-kNN agreement", AGREEMENT_ANALYSIS, None)
        except HarnessError as exc:
            return {"agreement": None, "error": str(exc)[:200]}
        value = reply.output.reports.get("knn_teacher_agreement")
        agreement = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        return {"agreement": agreement, "analysis_id": reply.analysis_id, "status": reply.output.status}

    @staticmethod
    def _shared_genomes(tools: ResearchTools) -> list[dict[str, Any]]:
        """Genomes other researchers posted to the forum (read every step)."""
        out = []
        for finding in tools.read_findings(limit=50):
            for line in finding.get("body", "").splitlines():
                if line.startswith(GENOME_PREFIX):
                    try:
                        out.append({"genome": json.loads(line[len(GENOME_PREFIX):]),
                                    "from": finding.get("researcher")})
                    except json.JSONDecodeError:
                        pass
        return out

    @staticmethod
    def _maybe_post(tools: ResearchTools, state: dict[str, Any], name: str, feedback: Feedback,
                    genome: dict[str, Any], pgr: float | None) -> None:
        """Share a new personal best (after the starting points) with the other researchers: best
        by the one ranking (experiments/ranking.py: lower bound, then mean), as everywhere."""
        if pgr is None or feedback.result is None or state["step"] < 3:
            return
        ci, vs = feedback.result.pgr_ci95, feedback.result.vs_vanilla
        key = rank_key(pgr, ci)
        earlier = [k for r in state["results"][:-1] if (k := rank_key(r["pgr"], r.get("ci95"))) is not None]
        if key is None or (earlier and key <= max(earlier)):
            return
        body = (f"Dev PGR {pgr:+.3f}" + (f" ± {ci:.3f}" if ci is not None else "")
                + (f", {vs.mean:+.3f} vs vanilla (p={vs.p_value})" if vs else "")
                + f".\n{GENOME_PREFIX}{json.dumps(genome, sort_keys=True)}")
        tools.post_finding(f"new best: {name} (PGR {pgr:+.3f})", body, feedback.attempt_id)
