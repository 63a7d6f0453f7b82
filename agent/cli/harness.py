"""``aar tasks``, ``aar baselines`` and ``aar eval``: the harness on the command line."""

from __future__ import annotations

import os
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from agent.cli import app
from agent.cli.common import (
    DEVICE_OPTION,
    EXECUTOR_OPTION,
    EXIT_IDEA_FAILED,
    EXIT_INTERRUPTED,
    ISOLATION_OPTION,
    JSON_OPTION,
    RAY_ADDRESS_OPTION,
    SEED_RESOURCES_OPTION,
    SEEDS_OPTION,
    SIZES_OPTION,
    TASK_OPTION,
    UNSAFE_OPTION,
    console,
    err_console,
    fail,
    fmt,
    parse_sizes,
    print_json,
    resolve_executor,
    resolve_isolation,
)
from agent.session_setup import save_baseline_summary
from sandbox.baseline_ideas import baseline_files
from sandbox.cache.task_cache import TaskCache, cached_tasks, locate_cache, open_cache
from sandbox.execution.base import ExecutorOptions
from sandbox.execution.interrupts import SeedInterrupts
from sandbox.execution.registry import get_executor
from sandbox.isolation.base import SEED_TIME_S
from sandbox.isolation.cgroups import STRICT_ENV
from sandbox.isolation.devices import build_device, resolve_device
from sandbox.results import IdeaResult, hide_heldout
from sandbox.scoring.evaluator import Evaluator
from sandbox.tasks import get_task, list_tasks
from sandbox.untrusted import rich_text


def _open(task: str, sizes: str | None, seeds: int, quiet: bool, device: str = "cpu") -> TaskCache:
    spec = get_task(task, parse_sizes(sizes))
    return open_cache(spec, n_weak_seeds=seeds, show_progress=not quiet, device=device)


@app.command("tasks")
def tasks_cmd(json_out: bool = JSON_OPTION) -> None:
    """List tasks (built-in, and task directories already cached): sizes, models, fixed baselines."""
    rows: list[dict[str, Any]] = []
    for name in list_tasks():
        spec = get_task(name)
        row: dict[str, Any] = {"name": name, "description": spec.description, "weak_model": spec.weak_model,
               "strong_model": spec.strong_model, "sizes": spec.sizes.text(), "cached": False,
               "source": spec.source}
        try:
            cache, _ = locate_cache(spec)
            row["sizes"] = cache.spec.sizes.text()
            if cache.exists():
                row.update(cached=True, cache_key=cache.key, baselines=cache.baselines().model_dump())
        except Exception as exc:  # a missing asset is reported, not fatal for the listing
            row["unavailable"] = str(exc)
        rows.append(row)
    for found in cached_tasks():
        if found.name in list_tasks():
            continue
        rows.append({"name": found.name, "description": f"task directory {found.source or '?'}",
                     "weak_model": "", "strong_model": "", "sizes": found.sizes, "cached": True,
                     "cache_key": found.key, "source": found.source,
                     "baselines": found.baselines and found.baselines.model_dump()})
    if json_out:
        print_json(rows)
        return
    table = Table("task", "weak → strong", "weak-train,unlabeled,dev,held-out", "weak acc", "ceiling", "source / note")
    for r in rows:
        b = r.get("baselines")
        models = f"{r['weak_model']} → {r['strong_model']}" if r["weak_model"] else "—"
        note = r.get("unavailable") or ("" if r["cached"] else "not cached yet · ")
        table.add_row(r["name"], models, r["sizes"], fmt(b and b["weak_dev"]["mean"]),
                      fmt(b and b["ceiling_dev"]["mean"]),
                      textwrap.shorten((note + (r["source"] or "")).strip(), 80, placeholder=" …"))
    console.print(table)
    console.print("Custom tasks: pass a directory of jsonl files as --task (see prompts/idea_contract.md); "
                  "cached ones are listed above as name@content-key.")


def _result_row(r: IdeaResult, held_out: bool) -> list:
    pgr = f"{r.pgr.mean:+.3f} ± {fmt(r.pgr_ci95)}" if r.pgr else "—"
    vs = r.vs_vanilla
    diff = f"{vs.mean:+.3f} (p={fmt(vs.p_value, 2)})" if vs else "—"
    heldout = [fmt(r.heldout_acc.mean if r.heldout_acc else None)] if held_out else []
    return [rich_text(r.idea), r.status, pgr, fmt(r.dev_acc.mean if r.dev_acc else None), *heldout, diff,
            f"{r.runtime_s:.1f}s", rich_text("; ".join(r.warnings), 60)]


def _results_table(title: str, results: list[IdeaResult], held_out: bool = True) -> Table:
    table = Table("idea", "status", "dev PGR ± 95% CI", "dev acc", *(["held-out acc"] if held_out else []),
                  "Δ PGR vs vanilla", "time", "warnings", title=title)
    for r in results:
        table.add_row(*_result_row(r, held_out))
    return table


def _seeds_table(result: IdeaResult, held_out: bool) -> Table:
    """Per seed: status, dev figures (held-out only when asked) and what the idea reported
    with ctx.report (the idea's words: shown as data, capped)."""
    table = Table("seed", "status", "dev acc", "dev PGR", *(["held-out acc"] if held_out else []),
                  "diagnostics (ctx.report)", title="seeds")
    for s in result.seeds:
        diag = ", ".join(f"{k}={v}" for k, v in s.diagnostics.items())
        heldout = [fmt(s.heldout_acc)] if held_out else []
        table.add_row(str(s.seed), s.status, fmt(s.dev_acc), fmt(s.pgr), *heldout, rich_text(diag or "—", 120))
    return table


def _count_look(lab: Path | None, result: IdeaResult, seeds: int) -> int:
    """Record a held-out look in the lab; the task's looks so far, this one included."""
    from experiments.heldout_looks import looks, record_look
    from experiments.store import LabStore

    try:
        store = LabStore.open(lab, create=True)
    except Exception as exc:  # noqa: BLE001 - any lab fault: no look is shown uncounted
        fail(f"--held-out needs a lab to count the look in ({exc}); pass --lab PATH or set $AAR_LAB")
    record_look(store, result.task, result.cache_key, result.idea, seeds)
    return len(looks(store, result.task))


def _cost(r: IdeaResult) -> dict:
    """Seconds per seed (wall, on this machine as loaded), and what the idea reported about its
    own cost (fine-tune baselines report peak RSS and CPU seconds)."""
    diag = [s.diagnostics for s in r.seeds]
    pick = lambda key: [d[key] for d in diag if isinstance(d.get(key), int | float)]  # noqa: E731
    return {"idea": r.idea, "seconds_per_seed": [round(s.runtime_s, 1) for s in r.seeds],
            "peak_rss_mb": max(pick("peak_rss_mb"), default=None), "cpu_s_per_seed": pick("cpu_s")}


@app.command("baselines")
def baselines_cmd(task: str = TASK_OPTION, seeds: int = SEEDS_OPTION, json_out: bool = JSON_OPTION,
                  split_sizes: str | None = SIZES_OPTION, isolation: str = ISOLATION_OPTION,
                  unsafe: bool = UNSAFE_OPTION, device: str = DEVICE_OPTION,
                  time_budget: float = typer.Option(SEED_TIME_S, "--time-budget", help="Seconds per seed."),
                  executor: str = EXECUTOR_OPTION, ray_address: str | None = RAY_ADDRESS_OPTION,
                  seed_resources: str | None = SEED_RESOURCES_OPTION) -> None:
    """Score every built-in baseline idea: PGR mean ± CI, paired difference vs vanilla, time."""
    isolation = resolve_isolation(isolation, unsafe)
    device = resolve_device(device, remote=executor != "local")  # a Ray head needs no GPU
    runner = get_executor(ExecutorOptions(resolve_executor(executor, ray_address, seed_resources)))
    cache = _open(task, split_sizes, seeds, json_out, build_device(device))
    evaluator = Evaluator(cache, isolation=isolation, device=device, time_budget_s=time_budget,
                          executor=runner)
    fixed = cache.baselines()
    results = []
    paths = baseline_files(cache.card().kind)
    for path in paths:
        started = time.monotonic()
        results.append(evaluator.evaluate(path, list(range(seeds))))
        if not json_out:
            console.print(f"  {path.stem}: {results[-1].status} in {time.monotonic() - started:.1f}s")
    save_baseline_summary(evaluator, list(range(seeds)), list(zip(paths, results, strict=True)))
    if json_out:
        print_json({"task": cache.spec.name, "cache_key": cache.key, "fixed_baselines": fixed.model_dump(),
                    "gap_dev": fixed.gap_dev, "kind": cache.card().kind, "device": device,
                    "baselines": [r.model_dump(mode="json") for r in results],
                    "cost": [_cost(r) for r in results]})
        return
    console.print(
        f"{cache.spec.name}: weak {fixed.weak_dev.mean:.3f} ± {fixed.weak_dev.sd:.3f}, "
        f"ceiling {fixed.ceiling_dev.mean:.3f} ± {fixed.ceiling_dev.sd:.3f} "
        f"(dev, {fixed.weak_dev.n} seeds); gap {100 * fixed.gap_dev:.1f} points"
    )
    console.print(_results_table(f"baselines on {cache.spec.name}, {seeds} seeds", results, held_out=False))


@app.command("eval")
def eval_cmd(idea: Path = typer.Argument(..., help="The idea file (defines run(ctx))."),
             task: str = TASK_OPTION, seeds: int = SEEDS_OPTION, json_out: bool = JSON_OPTION,
             split_sizes: str | None = SIZES_OPTION, isolation: str = ISOLATION_OPTION,
             unsafe: bool = UNSAFE_OPTION, device: str = DEVICE_OPTION,
             time_budget: float = typer.Option(SEED_TIME_S, "--time-budget", help="Seconds per seed."),
             strict_limits: bool = typer.Option(
                 False, "--strict-limits",
                 help=f"Refuse to run where whole-run limits (cgroups) cannot be enforced (or set {STRICT_ENV}=1).",
             ),
             executor: str = EXECUTOR_OPTION, ray_address: str | None = RAY_ADDRESS_OPTION,
             seed_resources: str | None = SEED_RESOURCES_OPTION,
             held_out: bool = typer.Option(
                 False, "--held-out",
                 help="Also show held-out figures. Each use is counted in the lab (shown on the leaderboard): "
                      "the held-out split is for rare, deliberate looks."),
             lab: Path | None = typer.Option(None, "--lab", help="Lab that counts --held-out looks "
                                                                  "(default: $AAR_LAB, else ./aar-lab).")) -> None:
    """Score one idea file on a task (dev figures; held-out ones only with --held-out)."""
    isolation = resolve_isolation(isolation, unsafe)
    device = resolve_device(device, remote=executor != "local")  # a Ray head needs no GPU
    if strict_limits:  # read by every run's limits, here and in the processes it starts
        os.environ[STRICT_ENV] = "1"
    runner = get_executor(ExecutorOptions(resolve_executor(executor, ray_address, seed_resources)))
    if not idea.is_file():
        fail(f"{idea}: no such idea file; pass the path of a .py file that defines run(ctx)")
    try:
        idea.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{idea}: cannot read it ({exc.__class__.__name__}); pass a readable UTF-8 .py file")
    with SeedInterrupts(lambda line: err_console.print(line, highlight=False, markup=False)) as interrupts:
        cache = _open(task, split_sizes, seeds, json_out, build_device(device))
        evaluator = Evaluator(cache, isolation=isolation, time_budget_s=time_budget, device=device, executor=runner)
        result = _evaluate_until_ctrl_c(evaluator, interrupts, idea, seeds)
    looks = _count_look(lab, result, seeds) if held_out else None
    if json_out:
        data = result.model_dump(mode="json")
        print_json({**data, "heldout_looks": looks} if held_out else hide_heldout(data))
    else:
        console.print(_results_table(f"{idea.name} on {cache.spec.name}", [result], held_out))
        console.print(_seeds_table(result, held_out))
        if held_out:
            console.print(f"held-out look {looks} on {result.task} in this lab (counted on the leaderboard)",
                          markup=False)
        if result.limits_not_enforced:
            console.print("warning: whole-run limits not enforced where the seeds ran (this host or its Ray "
                          f"nodes): {', '.join(result.limits_not_enforced)} "
                          "(per-process limits only; --strict-limits refuses to run)", markup=False)
        for note in result.limit_notes:
            console.print(f"note: {note}", markup=False)
    if interrupts.requested:  # Ctrl-C once: the seeds finished and are scored above
        fail(f"interrupted (Ctrl-C): the seeds of {idea.name} finished and were scored; {_rerun_hint()}",
             EXIT_INTERRUPTED)
    if result.status != "ok":
        bad = next(s for s in result.seeds if s.status != "ok")
        fail(f"{idea.name}: {result.status} on seed {bad.seed}: {bad.error}", EXIT_IDEA_FAILED)


def _evaluate_until_ctrl_c(evaluator: Evaluator, interrupts: SeedInterrupts, idea: Path, seeds: int) -> IdeaResult:
    """``evaluate``, where a first Ctrl-C lets the seeds finish and a second kills them (exit 130)."""
    try:
        with interrupts.seeds(evaluator.executor, idea.name):
            if err_console.is_terminal:  # a person can press Ctrl-C; piped, errors stay one line
                err_console.print(f"running {seeds} seeds of {idea.name} (Ctrl-C: let them finish and stop; "
                                  "twice: kill them)", highlight=False, markup=False)
            return evaluator.evaluate(idea, list(range(seeds)))
    except KeyboardInterrupt:
        fail(f"interrupted (Ctrl-C{' twice' if interrupts.presses > 1 else ''}): "
             f"{'the seeds in flight were killed, ' if interrupts.presses > 1 else ''}nothing was scored; "
             f"{_rerun_hint()}", EXIT_INTERRUPTED)
        raise  # unreachable: fail raises


def _rerun_hint() -> str:
    return f"run it again with: aar {shlex.join(sys.argv[1:])}"
