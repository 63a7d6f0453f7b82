"""Proposers: the part of the researcher that decides what to try next (a registry)."""

from agent.proposers.base import (
    BudgetStop,
    ExperimentSpec,
    Proposer,
    ProposerConfig,
    ResearchTools,
    get_proposer,
    list_proposers,
    register_proposer,
)

__all__ = [
    "BudgetStop", "ExperimentSpec", "Proposer", "ProposerConfig", "ResearchTools",
    "get_proposer", "list_proposers", "register_proposer",
]
