"""One evaluation unit, played by the agent in its own process.

The env and the agent run side by side in the worker (no round trip per step), and the worker
reports each finished episode to the supervising process, which enforces the time limit and
notices crashes. Whatever the agent does wrong (raises, returns a bad action) ends the unit with
a reason; errors of the evaluator itself are reported as such.
"""

from __future__ import annotations

import traceback
import zlib

import gymnasium as gym
import numpy as np

from bitr_eval.suites import Unit


class AgentFault(Exception):
    """The agent misbehaved; the message says how."""


def _call(method: str, fn, *args):
    try:
        return fn(*args)
    except Exception as err:  # the agent's own code: anything can happen
        tail = "".join(traceback.format_exception(err)[-3:]).strip()
        raise AgentFault(f"agent.{method} raised {type(err).__name__}: {err}\n{tail}") from err


def _checked(action, space) -> np.ndarray:
    try:
        array = np.asarray(action, dtype=space.dtype)
    except (TypeError, ValueError) as err:
        raise AgentFault(f"agent.act returned {action!r}, not a numeric array") from err
    if array.shape != space.shape:
        raise AgentFault(f"agent.act returned shape {array.shape}, the action space is {space.shape}")
    if not np.isfinite(array).all():
        raise AgentFault(f"agent.act returned a non-finite action {array}")
    slack = 1e-6 * (1 + np.abs(space.high - space.low))  # float32 rounding of a bound is fine
    if (array < space.low - slack).any() or (array > space.high + slack).any():
        raise AgentFault(f"agent.act returned {array}, outside the action bounds [{space.low}, {space.high}]")
    return np.clip(array, space.low, space.high)


def draw_context(task_data, n_episodes: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n_episodes` whole episodes of one task's data, drawn uniformly without replacement."""
    ends = np.flatnonzero(task_data.terminals | task_data.timeouts) + 1
    starts = np.r_[0, ends[:-1]]
    chosen = np.sort(rng.choice(len(ends), size=min(n_episodes, len(ends)), replace=False))
    rows = np.concatenate([np.arange(starts[i], ends[i]) for i in chosen])
    transitions = task_data.take(rows)
    del transitions["behaviours"]  # the agent must not know who collected its context
    return transitions


def start_seed(unit: Unit, seed: int, task: int, phase: str, k: int) -> int:
    """The reset seed of the k-th `phase` episode of (task, seed). It depends on the env and
    split, not on the protocol: the offline-iid, offline-ood and online scored episodes start
    from the same states, so the iid-to-ood drop is a paired comparison (common random numbers)."""
    key = [seed, task, zlib.crc32(f"{unit.env_id}/{unit.split}/{phase}".encode()), k]
    return int(np.random.default_rng(key).integers(2**31))


def play_unit(unit: Unit, seeds, submission: dict, report) -> None:
    """Play every task x seed of `unit`; `report(kind, payload)` receives each episode."""
    from bitr_envs.datasets import load
    from bitr_eval.agents import make_agent

    env = gym.make(unit.env_id, split=unit.split)
    env_class = type(env.unwrapped)
    space = env.action_space
    agent = _call(
        "__init__", make_agent, submission["agent"], unit.env_id, env.observation_space, space,
        submission.get("checkpoint"), submission.get("agent_args"),
    )
    privileged = bool(getattr(agent, "privileged", False))
    context_data = load(unit.context_dataset) if unit.context_dataset else None
    online = unit.protocol == "online"
    n_episodes = unit.explore_episodes + unit.episodes if online else unit.episodes
    report("ready", None)

    for task in range(len(env.unwrapped.tasks)):
        for seed in seeds:
            _call("reset", agent.reset)
            if privileged:
                agent.set_task(env_class.task_features(env.unwrapped.tasks[task]))
            if context_data is not None:
                rng = np.random.default_rng([seed, task, zlib.crc32(unit.unit_id.encode())])
                _call("set_context", agent.set_context, draw_context(context_data.tasks[task], unit.context_episodes, rng))
            for episode in range(n_episodes):
                phase = "explore" if online and episode < unit.explore_episodes else "score"
                k = episode - unit.explore_episodes if online and phase == "score" else episode
                obs, info = env.reset(seed=start_seed(unit, seed, task, phase, k), options={"task": task})
                total, length, success, done = 0.0, 0, None, False  # success: where the env has it
                while not done:
                    action = _checked(_call("act", agent.act, obs), space)
                    next_obs, reward, terminated, truncated, info = env.step(action)
                    if online:
                        _call("observe", agent.observe, obs, action, reward, next_obs, terminated, truncated)
                    total += reward
                    length += 1
                    if "success" in info:
                        success = bool(success) or bool(info["success"])
                    done = terminated or truncated
                    obs = next_obs
                report("episode", {"task": task, "seed": seed, "episode": episode, "phase": phase,
                                   "return": float(total), "length": length, "success": success})
    env.close()


def worker_main(connection, unit: Unit, seeds, submission: dict) -> None:
    """Entry point of the worker process: play the unit, reporting over `connection`."""
    def report(kind, payload):
        connection.send((kind, payload))

    try:
        play_unit(unit, seeds, submission, report)
        report("done", None)
    except AgentFault as fault:
        report("failed", str(fault))
    except Exception as err:  # the evaluator's own bug: say so, with where it happened
        report("failed", "evaluator error: " + "".join(traceback.format_exception(err)[-4:]).strip())
    finally:
        connection.close()
