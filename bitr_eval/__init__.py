"""The standard evaluation protocol: suites of (env, split, protocol) units, an agent API,
isolated and resumable runs, honest statistics, and result files for the leaderboard.

    bitr evaluate --agent my_pkg.agent:make --checkpoint run/ckpt --suite lite --out runs/mine.json

The names below are imported when first used: `bitr datasets build` and its worker processes
(which import the `bitr` command's module) then skip the evaluator's imports (scipy among them).
"""

import importlib

_HOMES = {
    "Agent": "agents", "OracleAgent": "agents", "RandomAgent": "agents", "load_factory": "agents",
    "ResultError": "results", "load_result": "results", "validate": "results",
    "evaluate": "runner",
    "PROTOCOLS": "suites", "SUITES": "suites", "Suite": "suites", "Unit": "suites", "suite": "suites",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'bitr_eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bitr_eval.{_HOMES[name]}"), name)
