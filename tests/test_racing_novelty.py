"""Racing over seeds and the novelty gate, with the real evaluator and real idea files."""

from __future__ import annotations

import pytest

from agent.novelty import NoveltyGate, code_key
from agent.proposers.offline import choose_next, rank_of
from agent.proposers.search_space import BASE, GENES, adapt_space, baseline_genome, render_idea
from agent.racing import Racer, lower_bound, parse_ladder
from tests.test_history_support import attempt

IDEA = '''"""A linear head."""
from sandbox.runtime import train_head

CONFIG = {"epochs": 5, "lr": 0.003}


def run(ctx):
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed, epochs=CONFIG["epochs"])
    return head.predict_proba(ctx.features("test"))
'''


def test_same_code_or_configuration_has_one_key():
    respelled = IDEA.replace('"""A linear head."""', '"""Another story."""').replace(
        '{"epochs": 5, "lr": 0.003}', '{"lr": 3e-3,   "epochs": 5}  # same numbers')
    assert code_key(respelled) == code_key(IDEA)
    assert code_key(IDEA.replace('"epochs": 5', '"epochs": 6')) != code_key(IDEA)
    assert code_key("def run(ctx) :\n  return 1  # x") == code_key("def run(ctx):\n    return 1")
    assert code_key("def run(:") == code_key("def run(:  # broken")  # unparsable code too


def test_gate_points_at_the_earlier_attempt_and_ignores_abandoned_ones():
    first = attempt("s", 1, "head", pgr=0.4, attempt_id="s-0001")
    gone = attempt("s", 2, "gone", attempt_id="s-0002", pgr=None).model_copy(update={"status": "abandoned"})
    gate = NoveltyGate.of([first, gone])
    found = gate.check(first.code + "\n# a comment\n")
    assert found is not None and found.attempt_id == "s-0001" and "s-0001" in found.message()
    assert "no attempt was spent" in found.message()
    assert gate.check(first.code.replace("epochs=11", "epochs=12")) is None


def test_offline_configs_differing_only_in_their_story_are_duplicates():
    a = render_idea(BASE, ["final"], "one title", "one hypothesis")
    b = render_idea(BASE, ["final"], "other title", "another hypothesis")
    assert code_key(a) == code_key(b)
    assert code_key(render_idea({**BASE, "prior": "weak"}, ["final"], "t", "h")) != code_key(a)


def test_ladder_parsing():
    assert parse_ladder("1,3,8") == [1, 3, 8] and parse_ladder("off") is None and parse_ladder(None) is None
    for bad in ("3,1", "1,1", "a", "0,2"):
        with pytest.raises(ValueError, match="increasing seed counts"):
            parse_ladder(bad)


def test_leaders_ranked_by_lower_bound_not_mean():
    lucky = {"pgr": 0.9, "ci95": None}  # one seed
    steady = {"pgr": 0.6, "ci95": 0.05}
    wide = {"pgr": 0.7, "ci95": 0.3}
    assert sorted([lucky, steady, wide], key=lambda r: rank_of(r), reverse=True) == [steady, wide, lucky]
    assert rank_of({**steady, "rejected": True}) is None  # a rejected result ranks not at all


def test_search_space_adapts_to_the_task_card():
    binary_small = {"classes": ["a", "b"], "n_unlabeled": 500, "layers": ["final"], "key": "k1"}
    many = {"classes": list("abcdefgh"), "n_unlabeled": 4000, "layers": ["layer_3", "final"], "key": "k2"}
    genes_b, starts_b = adapt_space(binary_small)
    genes_m, starts_m = adapt_space(many)
    assert genes_b["cotrain"] == [False] and max(genes_b["k"]) == 20 and {"prior": "weak"} in starts_b
    assert genes_m["cotrain"] == GENES["cotrain"] and {"cotrain": True} in starts_m and starts_b != starts_m
    request = {"seed": 0, "step": 0, "results": [], "card": binary_small}
    assert choose_next(request)["genome"] == BASE  # the reference first, then the task's own starts
    second = choose_next({**request, "step": 1, "results": [{"key": "x", "genome": BASE, "pgr": 0.1, "ci95": 0.1}]})
    assert second["move"] == "start"


def test_the_search_starts_from_the_tasks_best_baseline_then_changes_it_a_step_at_a_time():
    card = {"classes": list("abcdefgh"), "n_unlabeled": 4000, "layers": ["layer_3", "final"], "key": "k"}
    baselines = [{"name": "vanilla_soft", "pgr": 0.5}, {"name": "aux_confidence", "pgr": 0.8},
                 {"name": "label_propagation", "pgr": 0.7}, {"name": "product_posterior", "pgr": 0.75}]
    best = baseline_genome("aux_confidence")
    request = {"seed": 0, "step": 0, "results": [], "card": card, "baselines": baselines}
    assert choose_next(request)["genome"] == best and best["norm"] is False and best["loss"] == "aux"
    _, starts = adapt_space(card, baselines)
    assert {**best, "transduce": 0.3} in starts and {**best, "ensemble": "seeds"} in starts
    # combined with the runner-up that changes other genes (its cleaning), not with another loss
    assert {**best, "cleaning": "propagate", "k": 10, "blend": 1.0} in starts
    assert not any(s["loss"] == "product" for s in starts[:12])


def test_a_baseline_genome_writes_the_baselines_program(evaluator, idea_file):
    from sandbox.baseline_ideas import baseline_files

    base = next(p for p in baseline_files() if p.stem == "aux_confidence")
    genome = render_idea(baseline_genome("aux_confidence"), evaluator.card.layers, "aux", "as the baseline")
    ours = evaluator.evaluate(idea_file(genome), [0], charge=False, compare_vanilla=False)
    theirs = evaluator.evaluate(base, [0], charge=False, compare_vanilla=False)
    assert ours.seeds[0].dev_acc == pytest.approx(theirs.seeds[0].dev_acc, abs=0.005)
    changed = {**baseline_genome("aux_confidence"), "ensemble": "seeds", "transduce": 0.3, "prior": "weak",
               "cleaning": "knn", "self_train_rounds": 1}  # a few steps away from it: still a working program
    stepped = evaluator.evaluate(idea_file(render_idea(changed, evaluator.card.layers, "t", "h"), "b.py"), [0],
                                 charge=False, compare_vanilla=False)
    assert stepped.status == "ok" and stepped.seeds[0].dev_acc != ours.seeds[0].dev_acc


def test_racing_climbs_only_while_an_idea_could_lead(evaluator, idea_file):
    path = idea_file(IDEA)
    racer = Racer(evaluator, [1, 2])
    climbed = racer.evaluate(path, "head")  # no leader yet: it earns the second seed
    assert [s.seed for s in climbed.seeds] == [0, 1] and climbed.pgr is not None and climbed.pgr.n == 2
    assert climbed.vs_vanilla is not None and climbed.vs_vanilla.n == 2
    assert racer.leader == pytest.approx(lower_bound(climbed))
    racer.leader = climbed.pgr.mean + 10  # an unbeatable leader: one seed, then stop
    stays = racer.evaluate(path, "head")
    assert [s.seed for s in stays.seeds] == [0] and racer.climbs == [2, 1]
    assert lower_bound(stays) == pytest.approx(stays.pgr.mean - 1.0)  # one seed cannot lead


@pytest.mark.slow
def test_loop_refuses_a_repeat_without_spending_an_attempt(tmp_path, small_cache):
    from agent.budget import Budgets
    from agent.proposers.base import ExperimentSpec, Proposer, register_proposer
    from agent.research import run_research
    from agent.session_setup import ResearchConfig
    from experiments.schemas import RunConfig
    from experiments.store import LabStore

    seen: list[dict] = []

    @register_proposer("repeat-once")
    class Repeat(Proposer):
        def run(self, tools):
            for code in (IDEA, IDEA.replace("A linear head.", "The same head, retold."), IDEA.replace("5", "6")):
                seen.append(tools.run_experiment(ExperimentSpec(name="head", hypothesis="h", code=code)))
            tools.finish("done")

    config = ResearchConfig(task="wordnet-10", seeds=1, proposer="repeat-once", lab=tmp_path / "lab",
                            run=RunConfig(split_sizes="200,600,200,200", isolation="process", racing=[1, 2],
                                          budgets=Budgets(max_attempts=5)))
    outcome = run_research(config, install_signals=False)
    attempts = LabStore.open(tmp_path / "lab").attempts(outcome.session_id)
    assert [s["status"] for s in seen] == ["ok", "duplicate", "ok"]
    assert seen[1]["duplicate_of"] == attempts[0].attempt_id and len(attempts) == 2
    assert len(attempts[0].result.seeds) == 2  # the first idea raced up the ladder (no leader yet)
