"""The standard evaluation protocol: suites of (env, split, protocol) units, an agent API,
isolated and resumable runs, honest statistics, and result files for the leaderboard.

    bitr evaluate --agent my_pkg.agent:make --checkpoint run/ckpt --suite lite --out runs/mine.json
"""

from bitr_eval.agents import Agent, OracleAgent, RandomAgent, load_factory
from bitr_eval.results import ResultError, load_result, validate
from bitr_eval.runner import evaluate
from bitr_eval.suites import PROTOCOLS, SUITES, Suite, Unit, suite

__all__ = [
    "PROTOCOLS", "SUITES", "Agent", "OracleAgent", "RandomAgent", "ResultError", "Suite", "Unit",
    "evaluate", "load_factory", "load_result", "suite", "validate",
]
