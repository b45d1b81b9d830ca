"""The agent API, how submissions are loaded, and the two built-in anchor agents.

An agent is any object with these four methods (a complete example is `RandomAgent`):

    class MyAgent:
        def reset(self) -> None:                       # a new task begins: forget its context
        def set_context(self, transitions) -> None:    # offline context: dict of arrays
        def act(self, obs) -> action:                  # one action for one observation
        def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
                                                       # online: every transition it lives

`transitions` has the keys observations, actions, rewards, next_observations, terminals,
timeouts (arrays with one row per transition); it never says which task or which behaviour
policy produced them.

A submission names a factory, `package.module:make` or `path/to/file.py:make`, called as

    make(env_id=..., observation_space=..., action_space=..., checkpoint=..., **agent_args)

once per evaluation unit, inside the agent's own sandboxed process (`bitr_eval.sandbox`): the
spaces are `gymnasium.spaces.Box` rebuilt from their bounds, `agent_args` is JSON, and the agent
never holds the env or the task. `bitr evaluate --agent random` and `--agent oracle` name the
built-ins, which are also the board's anchors. Only a privileged factory (a class or function
attribute `privileged = True`, like `OracleAgent`) is also told the task's features, by
`set_task(features)` after each `reset`; its results are marked privileged and never ranked.
This module is the one home of that rule: the evaluator asks `is_privileged` before a run, the
leaderboard asks `role` of the filed runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

BUILT_IN = {  # the anchors of the normalised score: on the board for reference, never ranked
    "random": "bitr_eval.agents:RandomAgent",
    "oracle": "bitr_eval.agents:OracleAgent",
}


class Agent(Protocol):
    def reset(self) -> None: ...

    def set_context(self, transitions: dict[str, np.ndarray]) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None: ...


def load_factory(spec: str):
    """The callable a submission names: 'random', 'oracle', 'pkg.mod:make' or 'file.py:make'."""
    spec = BUILT_IN.get(spec, spec)
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"Agent {spec!r}: name a factory as 'package.module:make' or 'path/to/file.py:make' "
            f"(or one of the built-ins {list(BUILT_IN)})."
        )
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"Agent {spec!r}: no file {path}.")
        module_spec = importlib.util.spec_from_file_location(f"bitr_submission_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"Agent {spec!r}: cannot import {module_name!r} ({err}).") from err
    if not hasattr(module, attribute):
        raise ValueError(f"Agent {spec!r}: {module_name} has no {attribute!r}.")
    return getattr(module, attribute)


class RandomAgent:
    """Uniform random actions: the 0 of the normalised score."""

    def __init__(self, env_id: str, observation_space, action_space, checkpoint: Optional[str] = None, seed: int = 0):
        self.action_space = action_space
        self.action_space.seed(seed)

    def reset(self) -> None:
        pass

    def set_context(self, transitions) -> None:
        pass

    def act(self, obs):
        return self.action_space.sample()

    def observe(self, *transition) -> None:
        pass


class OracleAgent:
    """The family's expert behaviour policy, without its exploration noise, told the task.

    It is privileged: the evaluator hands it the task's features (`set_task`), which no other
    agent gets. It anchors the 100 of the normalised score and is never ranked.
    """

    privileged = True

    def __init__(self, env_id: str, observation_space, action_space, checkpoint: Optional[str] = None):
        from bitr_envs.datasets.behaviours import base_policy
        from bitr_envs.datasets.recipes import card

        family = card(env_id)
        self._policy = base_policy(family.behaviours[family.expert].policy, family.path.parent)
        self._low, self._high = action_space.low, action_space.high
        self._features: Optional[np.ndarray] = None

    def set_task(self, features: np.ndarray) -> None:
        self._features = np.asarray(features)

    def reset(self) -> None:
        self._features = None

    def set_context(self, transitions) -> None:
        pass

    def act(self, obs):
        action = self._policy(np.asarray(obs)[None], self._features[None])[0]
        return np.clip(action, self._low, self._high).astype(self._low.dtype)

    def observe(self, *transition) -> None:
        pass


# Who is told the task, and which rows are ranked ----------------------------------------------

def factory_is_privileged(factory) -> bool:
    """A factory is privileged when it says so itself: its class or function attribute
    `privileged` (never an instance's, which the agent could set while it runs)."""
    return bool(getattr(factory, "privileged", False))


def is_privileged(submission: dict, isolation: str) -> bool:
    """Whether the evaluator tells this submission the task: the built-ins are read here; any
    other factory is loaded in a sandboxed probe (the evaluator never imports a submission's
    code), which reports `factory_is_privileged`. A privileged result is never ranked, so an
    agent that claims privilege only loses its rank."""
    from bitr_eval.sandbox import probe_privileged
    from bitr_eval.worker import STARTUP_LIMIT_S, absolute_spec, visible_paths

    spec = submission["agent"]
    if spec in BUILT_IN:
        return factory_is_privileged(load_factory(spec))
    return probe_privileged(absolute_spec(spec), isolation, visible_paths(submission), STARTUP_LIMIT_S)


def role(submissions: list[dict]) -> str:
    """The board role of an entry from its runs' submissions: 'anchor' (a built-in agent),
    'privileged' (told the task) or 'ranked'. Decided from the agent spec as well as the flag
    the evaluator recorded: a result file cannot rank the oracle."""
    if any(s["agent"] in BUILT_IN for s in submissions):
        return "anchor"
    if any(s["privileged"] for s in submissions):
        return "privileged"
    return "ranked"
