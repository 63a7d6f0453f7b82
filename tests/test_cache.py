import json

import numpy as np

from sandbox.cache.task_cache import cache_key, open_cache
from sandbox.tasks import SplitSizes, get_task
from tests.conftest import SMALL


def test_cache_has_public_and_private_stores(small_cache):
    public, private = small_cache.public_dir, small_cache.private_dir
    assert public.parent.name == "public" and private.parent.name == "private"
    card = small_cache.card()
    assert card.layers[-1] == "final" and len(card.layers) >= 4  # final + three intermediate
    for layer in card.layers:
        assert np.load(public / "features" / f"unlabeled__{layer}.npy").shape == (600, card.feature_dim)
        assert np.load(public / "features" / f"test__{layer}.npy").shape == (400, card.feature_dim)
    soft = np.load(public / "weak" / "seed_0" / "unlabeled_soft.npy")
    assert soft.shape == (600, 10) and np.allclose(soft.sum(1), 1, atol=1e-4)
    assert card.weak_seeds == [0, 1, 2, 3, 4]


def test_no_gold_label_lives_in_the_public_store(small_cache):
    public_files = {p.name for p in small_cache.public_dir.rglob("*") if p.is_file()}
    assert not any("gold" in name or "role" in name or "baseline" in name for name in public_files)
    texts = json.loads((small_cache.public_dir / "texts.json").read_text())
    assert set(texts) == {"unlabeled", "test"}
    assert (small_cache.private_dir / "gold_test.npy").exists()


def test_fixed_baselines_over_five_seeds_with_a_gap(small_cache):
    b = small_cache.baselines()
    assert b.weak_dev.n == b.ceiling_dev.n == 5
    assert b.ceiling_dev.mean - b.weak_dev.mean > 0.05
    assert b.weak_dev.sd > 0  # distinct weak teachers per seed


def test_cache_is_reused_and_key_changes_with_config(small_cache, cache_dir):
    spec = get_task("wordnet-10", SplitSizes.parse(SMALL))
    again = open_cache(spec, show_progress=False, root=cache_dir)
    assert again.key == small_cache.key
    data = spec.load()
    other_sizes = get_task("wordnet-10", SplitSizes.parse("200,600,200,100"))
    other_seed = spec.__class__(**{**spec.__dict__, "split_seed": 7})
    keys = {cache_key(spec, data), cache_key(other_sizes, data), cache_key(other_seed, data)}
    assert len(keys) == 3


def test_key_changes_when_the_data_changes(tmp_path):
    d = tmp_path / "task"
    d.mkdir()
    rows = [{"text": f"item {i}", "label": i % 2} for i in range(40)]
    (d / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = get_task(str(d))
    k1 = cache_key(spec, spec.load())
    rows[0]["label"] = 1
    (d / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert cache_key(spec, spec.load()) != k1


def test_a_build_killed_after_a_teacher_was_written_resumes(small_cache, tmp_path):
    """A seed's teacher folder written before the build was killed (the card does not list the
    seed yet) is rebuilt, not a 'Directory not empty' error on every later run."""
    import shutil

    for store in ("public", "private"):
        name = small_cache.public_dir.name
        shutil.copytree(small_cache.root / store / name, tmp_path / store / name)
    public = tmp_path / "public" / small_cache.public_dir.name
    card = json.loads((public / "card.json").read_text())
    card["weak_seeds"] = [0, 1, 2, 3]  # seed 4's teacher is on disk, its card entry never written
    (public / "card.json").write_text(json.dumps(card))
    spec = get_task("wordnet-10", SplitSizes.parse(SMALL))
    again = open_cache(spec, n_weak_seeds=5, show_progress=False, root=tmp_path)
    assert again.card().weak_seeds == [0, 1, 2, 3, 4]
    assert np.load(public / "weak" / "seed_4" / "test_probs.npy").shape[0] == again.card().n_test


def _copy_cache(small_cache, root):
    import shutil

    for store in ("public", "private"):
        name = small_cache.public_dir.name
        shutil.copytree(small_cache.root / store / name, root / store / name)


def test_references_do_not_move_with_the_number_of_teacher_seeds(small_cache, tmp_path):
    """Issue 28: the same predictions got a PGR .004-.007 apart depending on how many teacher
    seeds the cache held (the references averaged them all); now the fixed seeds alone count."""
    from sandbox.cache.task_cache import reference_seeds
    from sandbox.execution.run_output import RunOutput
    from sandbox.scoring.evaluator import Evaluator

    _copy_cache(small_cache, tmp_path)
    spec = get_task("wordnet-10", SplitSizes.parse(SMALL))
    before = small_cache.baselines()
    more = open_cache(spec, n_weak_seeds=7, show_progress=False, root=tmp_path)
    assert more.card().weak_seeds == list(range(7)) and reference_seeds(spec) == list(range(5))
    after = more.baselines()
    assert after.reference_seeds == [0, 1, 2, 3, 4]
    assert (after.weak_dev, after.ceiling_dev, after.ceiling_heldout) == (before.weak_dev, before.ceiling_dev,
                                                                          before.ceiling_heldout)
    per_seed = json.loads((more.private_dir / "per_seed_baselines.json").read_text())
    all_seven = np.mean([per_seed[str(s)]["dev"]["weak"] for s in range(7)])
    assert all_seven != before.weak_dev.mean  # the mean over every seed would have moved
    preds = np.load(more.public_dir / "weak" / "seed_6" / "test_probs.npy")
    out = RunOutput(status="ok", predictions=preds)
    few, many = (Evaluator(c, require_gap=False).score(out, 0, charge=False) for c in (small_cache, more))
    assert few.pgr == many.pgr and few.heldout_pgr == many.heldout_pgr


def test_a_summary_averaged_over_every_seed_is_redone_on_open(small_cache, tmp_path):
    """Caches summarised before references were fixed get the fixed ones from their per-seed
    figures when opened, with nothing trained again."""
    _copy_cache(small_cache, tmp_path)
    private = tmp_path / "private" / small_cache.public_dir.name
    old = small_cache.baselines().model_dump()
    old.update(reference_seeds=[], weak_dev={**old["weak_dev"], "mean": 0.5})  # as an old cache wrote it
    (private / "baselines.json").write_text(json.dumps(old))
    teachers = sorted((tmp_path / "public").rglob("test_probs.npy"))
    mtimes = [p.stat().st_mtime_ns for p in teachers]
    again = open_cache(get_task("wordnet-10", SplitSizes.parse(SMALL)), show_progress=False, root=tmp_path)
    assert again.baselines() == small_cache.baselines()
    assert [p.stat().st_mtime_ns for p in teachers] == mtimes
