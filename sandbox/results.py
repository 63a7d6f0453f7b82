"""Result models with a stable JSON form (persisted by the history; shown to proposers)."""

from __future__ import annotations

from typing import Any, Literal, overload

from pydantic import BaseModel, Field

Status = Literal["ok", "error", "timeout", "killed", "invalid", "denied", "lost"]


class Stat(BaseModel):
    """A mean over seeds with its spread."""

    mean: float = Field(description="Mean over seeds.")
    sd: float = Field(description="Sample standard deviation over seeds (0 for one seed).")
    n: int = Field(description="Number of seeds.")
    values: list[float] = Field(description="The per-seed values, in seed order.")


class FixedBaselines(BaseModel):
    """Weak-teacher accuracy and gold-trained strong ceiling, per test part, over seeds."""

    weak_dev: Stat = Field(description="Weak teacher accuracy on dev (its selection part: what proposers see).")
    weak_heldout: Stat = Field(description="Weak teacher accuracy on the held-out split.")
    ceiling_dev: Stat = Field(description="Strong head trained on gold labels: dev (selection part) accuracy.")
    ceiling_heldout: Stat = Field(description="Strong ceiling accuracy on the held-out split.")
    weak_confirm: Stat | None = Field(None, description="Weak teacher accuracy on dev's confirmation part "
                                                        "(never shown to proposers; None in older caches).")
    ceiling_confirm: Stat | None = Field(None, description="Strong ceiling accuracy on dev's confirmation part.")
    ceiling_recipe: str = Field(description="How the ceiling head was trained.")
    reference_seeds: list[int] = Field(
        default_factory=list,
        description="The fixed seeds these references average (the task's own, however many teacher "
                    "seeds the cache holds); empty in caches summarised before references were fixed.")

    @property
    def gap_dev(self) -> float:
        return self.ceiling_dev.mean - self.weak_dev.mean


class CeilingCheck(BaseModel):
    """Is the gold-trained ceiling itself under-trained? Its recipe against the same head trained
    longer, on one reference seed (what an at-the-ceiling flag explains itself with)."""

    seed: int = Field(description="The reference seed both ceilings were trained with.")
    recipe_epochs: int = Field(description="Epochs of the ceiling recipe.")
    longer_epochs: int = Field(description="Epochs of the longer-trained ceiling.")
    recipe_dev: float = Field(description="Dev accuracy of the recipe's ceiling on that seed.")
    longer_dev: float = Field(description="Dev accuracy of the longer-trained ceiling.")
    train_fit: float = Field(description="The recipe's ceiling's accuracy on its own gold training rows.")
    longer_train_fit: float = Field(description="The longer-trained ceiling's accuracy on those rows.")
    noise: float = Field(description="What the difference must exceed: the larger of the ceiling's 95% "
                                      "half-width across reference seeds, the paired 95% half-width of the two "
                                      "heads' difference over the dev rows, and one dev row.")

    @property
    def under_trained(self) -> bool:
        return self.longer_dev - self.recipe_dev > self.noise


class PairedDiff(BaseModel):
    """Paired difference of per-seed PGR against the vanilla baseline on the same seeds."""

    mean: float = Field(description="Mean of (idea PGR - vanilla PGR) over shared seeds.")
    ci95: float | None = Field(description="Half-width of the 95% t-interval (None if n < 2).")
    p_value: float | None = Field(description="Two-sided paired t-test p-value (None if n < 2).")
    n: int = Field(description="Number of paired seeds.")


class SeedResult(BaseModel):
    """One seed of one idea, as the trusted evaluator scored it."""

    seed: int = Field(description="Seed; also selects the weak teacher.")
    status: Status = Field(description="ok / error / timeout / killed / invalid / denied / lost (its worker died).")
    dev_acc: float | None = Field(None, description="Transfer accuracy on the dev split.")
    pgr: float | None = Field(None, description="PGR on dev against the fixed baselines.")
    heldout_acc: float | None = Field(None, description="Held-out accuracy (never shown to proposers).")
    heldout_pgr: float | None = Field(None, description="Held-out PGR (never shown to proposers).")
    confirm_acc: float | None = Field(None,
                                      description="Accuracy on dev's confirmation part (never shown to proposers).")
    confirm_pgr: float | None = Field(None, description="PGR on dev's confirmation part (never shown to proposers).")
    runtime_s: float = Field(0.0, description="Wall-clock seconds of the idea process.")
    warnings: list[str] = Field(default_factory=list, description="Degenerate-output flags etc.")
    diagnostics: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="Named values the idea reported.")
    error: str | None = Field(None, description="One-line reason when status is not ok.")
    traceback: str | None = Field(None, description="The idea's traceback when it raised.")
    log_tail: str = Field("", description="The end of the idea's stdout/stderr.")
    limits_not_enforced: list[str] = Field(
        default_factory=list, description="Whole-run limits (memory, pids, cpu) this host could not enforce.")
    limit_notes: list[str] = Field(
        default_factory=list, description="How the whole-run limits were sized where they differ from the asked "
                                          "ones (e.g. memory scaled down so the live workers fit the machine).")
    test_probs_npy: bytes | None = Field(
        None, exclude=True, repr=False,
        description="The validated test-row probabilities as .npy bytes: host memory only (never in result.json, "
                    "never shown); the loop keeps them for the researcher's own analysis runs.")


class IdeaResult(BaseModel):
    """An idea scored over several seeds: what the history stores."""

    schema_version: int = Field(1, description="Version of this JSON form.")
    idea: str = Field(description="Idea name (file stem or proposer-given name).")
    task: str = Field(description="Task name.")
    cache_key: str = Field(description="Key of the task cache the idea ran against.")
    status: Status = Field(description="ok if every seed is ok, else the first failing status.")
    seeds: list[SeedResult] = Field(description="Per-seed results, in seed order.")
    pgr: Stat | None = Field(None, description="Dev PGR over the ok seeds.")
    pgr_ci95: float | None = Field(None, description="Half-width of the 95% t-interval of PGR.")
    dev_acc: Stat | None = Field(None, description="Dev transfer accuracy over the ok seeds.")
    heldout_acc: Stat | None = Field(None, description="Held-out accuracy (kept from proposers).")
    heldout_pgr: Stat | None = Field(None, description="Held-out PGR (kept from proposers).")
    confirm_acc: Stat | None = Field(None, description="Accuracy on dev's confirmation part (kept from proposers).")
    confirm_pgr: Stat | None = Field(None, description="PGR on dev's confirmation part (kept from proposers): "
                                                       "rows the search never chose on.")
    vs_vanilla: PairedDiff | None = Field(None, description="Paired PGR difference vs vanilla.")
    weak_acc_dev: float = Field(description="Fixed baseline: weak accuracy on dev.")
    ceiling_acc_dev: float = Field(description="Fixed baseline: strong ceiling on dev.")
    runtime_s: float = Field(description="Wall-clock seconds the seeds took together (they run in parallel).")
    warnings: list[str] = Field(default_factory=list, description="Union of seed warnings.")
    isolation: str = Field(description="How the idea process was isolated (e.g. 'process').")
    limits_not_enforced: list[str] = Field(
        default_factory=list, description="Whole-run limits not enforced on some seed (empty: all held).")
    limit_notes: list[str] = Field(
        default_factory=list, description="Union of the seeds' notes on how their limits were sized.")
    isolation_not_enforced: list[str] = Field(
        default_factory=list, description="Channels between concurrent seeds this isolation cannot close "
                                          "(each names the benchmark that measures its capacity).")
    scoring_calls: int = Field(0, description="Scoring calls this session had used after this.")

    def for_proposer(self) -> ResultView:
        """The view a proposer may see: no held-out figures, and dev figures at limited
        resolution (accuracy to ``ACC_STEP``, PGR to ``PGR_STEP``) so that resubmitting ideas that
        differ on a few rows cannot read single dev labels off the score."""
        data = hide_heldout(self.model_dump(mode="json"))
        for seed in data["seeds"]:
            seed["dev_acc"], seed["pgr"] = shown_acc(seed["dev_acc"]), _coarse(seed["pgr"], PGR_STEP)
        if data.get("dev_acc"):  # over the seeds' shown accuracies, not the exact ones
            shown = [s["dev_acc"] for s in data["seeds"] if s["status"] == "ok" and s["dev_acc"] is not None]
            data["dev_acc"] = {**data["dev_acc"], **_mean_sd(shown), "values": shown}
        for key, step in (("dev_acc", ACC_STEP), ("pgr", PGR_STEP), ("vs_vanilla", PGR_STEP)):
            if data.get(key):
                data[key] = {k: _coarse(v, step) if k in ("mean", "sd", "ci95") else
                             [_coarse(x, step) for x in v] if k == "values" else v for k, v in data[key].items()}
        data["pgr_ci95"] = _coarse(data["pgr_ci95"], PGR_STEP)
        return ResultView.model_validate(data)


class SeedView(BaseModel):
    """One seed as a proposer sees it: dev figures only, at the feedback's resolution."""

    seed: int = Field(description="Seed; also selects the weak teacher.")
    status: Status = Field(description="How the seed's run ended.")
    dev_acc: float | None = Field(None, description="Transfer accuracy on dev (rounded).")
    pgr: float | None = Field(None, description="Dev PGR (rounded).")
    runtime_s: float = Field(0.0, description="Wall-clock seconds of the idea process.")
    warnings: list[str] = Field(default_factory=list, description="Degenerate-output flags etc.")
    diagnostics: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="Named values the idea reported.")
    error: str | None = Field(None, description="One-line reason when status is not ok.")
    traceback: str | None = Field(None, description="The idea's traceback when it raised.")
    log_tail: str = Field("", description="The end of the idea's stdout/stderr.")


class ResultView(BaseModel):
    """An idea's result as a proposer sees it (``IdeaResult.for_proposer``): no held-out field
    exists here, so none can be filled by mistake."""

    idea: str = Field(description="Idea name.")
    status: Status = Field(description="ok if every seed is ok, else the first failing status.")
    seeds: list[SeedView] = Field(description="Per-seed results, in seed order.")
    pgr: Stat | None = Field(None, description="Dev PGR over the ok seeds (rounded).")
    pgr_ci95: float | None = Field(None, description="Half-width of the 95% t-interval of dev PGR.")
    dev_acc: Stat | None = Field(None, description="Dev transfer accuracy over the ok seeds (rounded).")
    vs_vanilla: PairedDiff | None = Field(None, description="Paired dev PGR difference vs vanilla.")
    weak_acc_dev: float = Field(description="Fixed baseline: weak accuracy on dev.")
    ceiling_acc_dev: float = Field(description="Fixed baseline: strong ceiling on dev.")
    runtime_s: float = Field(description="Wall-clock seconds the seeds took together.")
    warnings: list[str] = Field(default_factory=list, description="Union of seed warnings.")
    scoring_calls: int = Field(0, description="Scoring calls this session had used after this.")


ACC_STEP = 0.005  # dev accuracy shown in steps of 5 rows per 1,000
PGR_STEP = 0.01


def _coarse(value: float | None, step: float) -> float | None:
    return None if value is None else round(round(value / step) * step, 6)


@overload
def shown_acc(value: float) -> float: ...
@overload
def shown_acc(value: None) -> None: ...
def shown_acc(value: float | None) -> float | None:
    """A dev accuracy at the feedback's resolution (``ACC_STEP``). Every number derived from dev
    accuracy that can reach a proposer (PGR, its interval and bound, vs-vanilla, the ranking,
    the integrity flags) is computed from this, never from the exact accuracy, so no
    combination of them says more about the dev labels than the rounded accuracies do."""
    return _coarse(value, ACC_STEP)


def _mean_sd(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n if n else 0.0
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {"mean": round(mean, 6), "sd": round(sd, 6), "n": n}


# Held-out rows and dev's confirmation part: scored, never shown while a search runs.
HELDOUT_MARKERS = ("heldout", "held_out", "confirm")


def hide_heldout(value: Any) -> Any:
    """A copy of ``value`` without any key that names a held-out or confirmation-part figure,
    at any depth: the one place that decides what of a result (or a baseline row) a proposer may see."""
    if isinstance(value, dict):
        return {k: hide_heldout(v) for k, v in value.items()
                if not any(m in str(k).lower() for m in HELDOUT_MARKERS)}
    if isinstance(value, list):
        return [hide_heldout(v) for v in value]
    return value
