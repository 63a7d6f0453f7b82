"""Fine-tune recipes for the auxiliary-confidence loss (prints figures; not a test).

On the CPU fine-tune task the built-in ft_aux_confidence loses to ft_vanilla: its weight on the
student's own hardened predictions reaches 0.5 after 20% of a one-epoch run, while the student is
still near chance. This scores ft_vanilla, the built-in recipe and later / smaller ramps of the
same loss on the same seeds through the sandboxed evaluator, paired against ft_vanilla on dev
(selection part) and held-out PGR.

    nice -n 10 .venv/bin/python benchmarks/ft_aux_recipes.py --task wordnet-10-ft --seeds 2
    .venv/bin/python benchmarks/ft_aux_recipes.py --task benchmarks/tasks/debian-sections-ft \
        --split-sizes 300,600,300,300 --epochs 3 --ramps 0.25:0.8 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.baseline_ideas import baseline_path  # noqa: E402
from sandbox.cache.task_cache import open_cache  # noqa: E402
from sandbox.results import IdeaResult  # noqa: E402
from sandbox.scoring.evaluator import Evaluator, paired_difference  # noqa: E402
from sandbox.tasks import SplitSizes, get_task  # noqa: E402

DEFAULT_OUT = Path(__file__).with_name("ft_aux_recipes.json")
# (max_alpha, warmup): a later, smaller ramp first (the built-in recipe is measured in the README's
# fine-tune baselines), then the built-in recipe itself
RAMPS = [(0.25, 0.8), (0.5, 0.2)]


def _replaced(code: str, old: str, new: str, name: str) -> str:
    if old not in code:
        raise SystemExit(f"{name}.py no longer reads {old!r}: update this benchmark")
    return code.replace(old, new)


def _with_epochs(code: str, recipe: str, epochs: float | None, name: str) -> str:
    """``code`` with the recipe expression it passes to finetune (``**<recipe>)``) given ``epochs``."""
    if epochs is None:
        return code
    return _replaced(code, f"**{recipe})", f"**{{**{recipe}, 'epochs': {epochs}}})", name)


def aux_code(max_alpha: float, warmup: float, epochs: float | None) -> str:
    """The built-in ft_aux_confidence idea with another ramp of its loss (and epochs)."""
    code = _replaced(baseline_path("ft_aux_confidence").read_text(), "aux_confidence_loss(max_alpha=0.5, warmup=0.2)",
                     f"aux_confidence_loss(max_alpha={max_alpha}, warmup={warmup})", "ft_aux_confidence")
    return _with_epochs(code, "VANILLA_FT", epochs, "ft_aux_confidence")


def vanilla_code(epochs: float | None) -> str:
    """The built-in ft_vanilla idea (with other epochs)."""
    return _with_epochs(baseline_path("ft_vanilla").read_text(), "vanilla_recipe(student)", epochs, "ft_vanilla")


def early_stop_code(epochs: float | None) -> str:
    """The built-in ft_weak_val_early_stop idea (with other epochs): at more than one epoch it can
    stop before the student fits the teacher's errors."""
    return _with_epochs(baseline_path("ft_weak_val_early_stop").read_text(), "VANILLA_FT", epochs,
                        "ft_weak_val_early_stop")


def score(evaluator: Evaluator, code: str, name: str, seeds: list[int]) -> IdeaResult:
    with tempfile.TemporaryDirectory(prefix="aar-ftaux-") as tmp:
        path = Path(tmp) / f"{name}.py"
        path.write_text(code)
        return evaluator.evaluate(path, seeds, name=name, charge=False)


def per_seed(result: IdeaResult, key: str) -> dict[int, float]:
    return {s.seed: getattr(s, key) for s in result.seeds if getattr(s, key) is not None}


def save(out: Path, task: str, rows: dict) -> None:
    data = json.loads(out.read_text()) if out.exists() else {}
    data[task] = {**data.get(task, {}), **rows}
    out.write_text(json.dumps(data, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="wordnet-10-ft")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--split-sizes", help="weak_train,unlabeled,dev,heldout (default: the task's).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=float, help="Epochs for every idea (default: the recipe's).")
    parser.add_argument("--ramps", default=",".join(f"{a}:{w}" for a, w in RAMPS),
                        help="Aux ramps max_alpha:warmup, comma-separated.")
    parser.add_argument("--early-stop", action="store_true", help="Also score ft_weak_val_early_stop.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    sizes = SplitSizes.parse(args.split_sizes) if args.split_sizes else None
    cache = open_cache(get_task(args.task, sizes), n_weak_seeds=args.seeds, show_progress=True, device=args.device)
    evaluator = Evaluator(cache)
    ramps = [tuple(float(v) for v in r.split(":")) for r in args.ramps.split(",")]
    ideas = {"ft_vanilla": vanilla_code(args.epochs),
             **{f"aux max {a} by {w}": aux_code(a, w, args.epochs) for a, w in ramps},
             **({"weak-val early stop": early_stop_code(args.epochs)} if args.early_stop else {})}
    suffix = "" if args.epochs is None else f" ({args.epochs:g} epochs)"
    rows: dict[str, dict] = {}
    for name, code in ideas.items():
        started = time.monotonic()
        result = score(evaluator, code, name.replace(" ", "_"), seeds)
        rows[name] = {"status": result.status, "seconds": round(time.monotonic() - started, 1),
                      "dev": per_seed(result, "pgr"), "heldout": per_seed(result, "heldout_pgr")}
        print(name, json.dumps(rows[name]), flush=True)
        save(args.out, f"{cache.card().name}{suffix}", rows)  # kept per idea: a run stopped later keeps these
    base = rows["ft_vanilla"]
    for name, row in rows.items():
        for part in ("dev", "heldout"):
            diff = paired_difference(row[part], base[part]) if name != "ft_vanilla" else None
            row[f"{part}_vs_vanilla"] = (None if diff is None
                                         else {"mean": diff.mean, "ci95": diff.ci95, "p": diff.p_value})
    save(args.out, f"{cache.card().name}{suffix}", rows)
    print("| idea | dev PGR | held-out PGR | dev Δ vs vanilla | held-out Δ vs vanilla | s |\n|---|---|---|---|---|---|")
    for name, row in rows.items():
        def mean(d: dict[int, float]) -> str:
            return f"{sum(d.values()) / len(d):+.3f}" if d else "—"

        def delta(d: dict | None) -> str:
            return "—" if d is None else f"{d['mean']:+.3f}" + ("" if d["p"] is None else f" (p {d['p']:.2f})")

        print(f"| {name} | {mean(row['dev'])} | {mean(row['heldout'])} | {delta(row['dev_vs_vanilla'])} | "
              f"{delta(row['heldout_vs_vanilla'])} | {row['seconds']} |")


if __name__ == "__main__":
    main()
