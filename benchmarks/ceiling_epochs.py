"""Ceiling-recipe benchmark (prints figures; not a test): is the gold-trained ceiling under-trained?

Trains the features ceiling (the recipe in sandbox/cache/task_cache.py: a linear head on the
strong model's features, trained on the unlabeled split's gold labels) with several epoch counts
on several reference seeds and prints dev (selection part) and held-out accuracy, the fit on its
own training rows and the seconds per fit. A recipe whose dev accuracy still rises past the
seed-to-seed noise with more epochs is under-trained: PGR measured against it is inflated and
an idea that merely trains longer can reach or pass "the ceiling".

    nice -n 10 .venv/bin/python benchmarks/ceiling_epochs.py --task wordnet-10 --epochs 20,40,60,100 --seeds 3

On a fine-tune task the ceiling is the vanilla fine-tune recipe (VANILLA_FT) on gold labels, and
``--epochs`` counts passes of that fine-tune (fractions allowed):

    .venv/bin/python benchmarks/ceiling_epochs.py --task wordnet-10-ft --epochs 1,2,3 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.cache.splits import HELDOUT, SELECTION  # noqa: E402
from sandbox.cache.task_cache import CEILING_EPOCHS, TaskCache, features_ceiling, open_cache  # noqa: E402
from sandbox.cache.threads import single_threaded  # noqa: E402
from sandbox.runtime.recipes import VANILLA_FT  # noqa: E402
from sandbox.scoring.t_stats import t_half_width  # noqa: E402
from sandbox.tasks import get_task  # noqa: E402

DEFAULT_OUT = Path(__file__).with_name("ceiling_epochs.json")


def fit_row(cache: TaskCache, seed: int, epochs: int) -> dict[str, float]:
    """One ceiling fit: dev (selection), held-out and train accuracy, seconds."""
    x_unl = np.load(cache.public_dir / "features" / "unlabeled__final.npy")
    x_test = np.load(cache.public_dir / "features" / "test__final.npy")
    gold_unl = np.load(cache.private_dir / "gold_unlabeled.npy")
    gold, roles = cache.gold_test(), cache.test_roles()
    started = time.monotonic()
    with single_threaded():  # the cache fits its ceilings so (sandbox/cache/threads.py)
        head = features_ceiling(cache, seed, gold_unl, epochs)
    seconds = time.monotonic() - started
    pred = head.predict_proba(x_test).argmax(1)
    return {"seed": seed, "epochs": epochs, "seconds": seconds,
            "dev": float((pred == gold)[roles == SELECTION].mean()),
            "heldout": float((pred == gold)[roles == HELDOUT].mean()),
            "train_fit": float((head.predict_proba(x_unl).argmax(1) == gold_unl).mean())}


def ft_fit_row(cache: TaskCache, seed: int, epochs: float) -> dict[str, float]:
    """One fine-tune ceiling: the vanilla recipe on gold labels for ``epochs`` passes."""
    from sandbox.cache.finetune import public_texts
    from sandbox.runtime.finetuning import finetune, predict_proba, vanilla_recipe
    from sandbox.runtime.students import load_student

    card = cache.card()
    if card.student is None:
        raise SystemExit(f"{card.name} has no fine-tune student")
    texts = public_texts(cache.public_dir)
    gold_unl = np.load(cache.private_dir / "gold_unlabeled.npy")
    gold, roles = cache.gold_test(), cache.test_roles()
    started = time.monotonic()
    model = load_student(card.student, len(card.classes), lora=card.student.vanilla_lora, seed=seed, device="cpu")
    onehot = np.eye(len(card.classes), dtype=np.float32)[gold_unl]
    recipe = vanilla_recipe(model)
    recipe["epochs"] = epochs
    finetune(model, texts["unlabeled"], onehot, seed=seed, **recipe)
    pred = predict_proba(model, texts["test"]).argmax(1)
    seconds = time.monotonic() - started
    return {"seed": seed, "epochs": epochs, "seconds": seconds,
            "dev": float((pred == gold)[roles == SELECTION].mean()),
            "heldout": float((pred == gold)[roles == HELDOUT].mean()),
            "train_fit": float((predict_proba(model, texts["unlabeled"]).argmax(1) == gold_unl).mean())}


def summarise(rows: list[dict[str, float]]) -> list[dict[str, float | int | None]]:
    """Per epoch count: mean dev / held-out / train accuracy over seeds, dev 95% half-width, seconds."""
    out = []
    for epochs in sorted({r["epochs"] for r in rows}):
        mine = [r for r in rows if r["epochs"] == epochs]
        out.append({"epochs": epochs, "n": len(mine),
                    **{k: float(np.mean([r[k] for r in mine])) for k in ("dev", "heldout", "train_fit", "seconds")},
                    "dev_ci95": t_half_width([r["dev"] for r in mine])})
    return out


def table(task: str, summary: list[dict], recipe_epochs: float) -> str:
    lines = [f"ceiling recipe on {task} (recipe: {recipe_epochs:g} epochs)", "",
             "| epochs | seeds | dev acc ± 95% | held-out acc | train fit | s / fit |", "|---|---|---|---|---|---|"]
    for s in summary:
        ci = "—" if s["dev_ci95"] is None else f"{s['dev_ci95']:.3f}"
        lines.append(f"| {s['epochs']:g} | {s['n']} | {s['dev']:.3f} ± {ci} | {s['heldout']:.3f} | "
                     f"{s['train_fit']:.3f} | {s['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="wordnet-10")
    parser.add_argument("--epochs", default="20,40,60,100", help="Comma-separated epoch counts.")
    parser.add_argument("--seeds", type=int, default=3, help="Reference seeds 0..N-1.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    cache = open_cache(get_task(args.task), n_weak_seeds=1, show_progress=False, device="cpu")
    finetuned = cache.card().kind == "finetune"
    recipe = float(VANILLA_FT["epochs"]) if finetuned else CEILING_EPOCHS
    rows = [ft_fit_row(cache, seed, float(e)) if finetuned else fit_row(cache, seed, int(e))
            for e in args.epochs.split(",") for seed in range(args.seeds)]
    summary = summarise(rows)
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data[cache.card().name] = {"recipe_epochs": recipe, "summary": summary, "fits": rows}
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(table(cache.card().name, summary, recipe))


if __name__ == "__main__":
    main()
