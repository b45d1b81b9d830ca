"""One evaluation unit: the env host (trusted) plays the env against the agent's sandboxed process.

The worker process is the trusted side of a unit: it holds the env, the task, the seeds and
the context data, steps the env and counts returns, lengths and success itself. The agent runs
in a separate sandboxed process (`bitr_eval.sandbox`, `bitr_eval.agent_host`) that receives
plain arrays over a non-pickle wire (`bitr_eval.wire`): the observations, its context
transitions (no task, no behaviour labels), online transitions, and the task's features only
when the evaluator marked the submission privileged. Every reply is checked (type, dtype,
shape, finite, bounds, time); whatever the agent does wrong ends the unit with a reason, and
errors of the evaluator itself are reported as such. Each task is played against a fresh agent
process, the tasks and each task's seeds in a secret order (`play_order`). The worker is a child
subreaper: at the end of each task it kills every process the agent left behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import time
import traceback
import zlib
from pathlib import Path
from typing import Optional

import gymnasium as gym
import numpy as np

from bitr_eval.sandbox import (
    AGENT_UID,
    ISOLATION_CHOICE,
    AgentProcess,
    become_subreaper,
    refuse_broad,
    refuse_unreadable,
)
from bitr_eval.suites import Unit, unit_context
from bitr_eval.wire import Closed, Timeout, WireError

STARTUP_LIMIT_S = 300.0  # importing the agent and building it from its checkpoint
MAX_TEXT = 4000  # characters of an agent's error text kept


class AgentFault(Exception):
    """The agent misbehaved; the message says how."""


class ActionCheck:
    """An action from the agent: numeric, the space's shape, finite, within the bounds."""

    def __init__(self, space):
        self.space = space
        slack = 1e-6 * (1 + np.abs(space.high - space.low))  # float32 rounding of a bound is fine
        self.low, self.high = space.low - slack, space.high + slack

    def __call__(self, array: np.ndarray) -> np.ndarray:
        space = self.space
        if array.shape != space.shape:
            raise AgentFault(f"agent.act returned shape {array.shape}, the action space is {space.shape}")
        array = array.astype(space.dtype)
        if ((array >= self.low) & (array <= self.high)).all():  # the usual case (NaN fails it)
            return np.minimum(np.maximum(array, space.low), space.high)
        if not np.isfinite(array).all():
            raise AgentFault(f"agent.act returned a non-finite action {array}")
        if (array < self.low).any() or (array > self.high).any():
            raise AgentFault(f"agent.act returned {array}, outside the action bounds [{space.low}, {space.high}]")
        return np.clip(array, space.low, space.high)


class RemoteAgent:
    """The evaluator's handle on the agent process: requests out, every reply checked."""

    def __init__(self, process, action_space, episode_limit_s: float):
        self.process, self.channel = process, process.channel
        self.check = ActionCheck(action_space)
        self.episode_limit_s = episode_limit_s
        self.deadline = time.monotonic() + STARTUP_LIMIT_S
        self.hung = f"agent hung: not ready within {STARTUP_LIMIT_S:.0f} s (the limit for loading the agent)"

    def next_episode(self) -> None:
        """Start the clock of one episode (with the task's reset and context before it)."""
        self.deadline = time.monotonic() + self.episode_limit_s
        self.hung = f"agent hung: nothing finished within {self.episode_limit_s:.0f} s (the limit for one episode)"

    def request(self, kind: str, arrays=None, expected: str = "ok", **fields):
        try:
            self.channel.send(kind, arrays, **fields)
            reply = self.channel.recv(self.deadline)
        except Timeout:
            raise AgentFault(self.hung) from None
        except Closed:
            raise AgentFault(self.process.exit_reason()) from None
        except WireError as err:
            raise AgentFault(f"agent sent a malformed message: {err}") from None
        if reply.type == "error":
            text = reply.fields.get("text")
            text = (text if isinstance(text, str) else repr(text))[:MAX_TEXT]
            if "MemoryError" in text:
                text += f"\n(out of memory: the agent's limit is {self.process.limits.memory_bytes / 2**30:.1f} GiB)"
            if "PermissionError" in text and self.process.isolation == "bwrap" and os.geteuid() == 0:
                text += (f"\n(the sandbox runs the agent as uid {AGENT_UID}: what it reads must be readable by "
                         "others, e.g. `chmod -R a+rX` on its checkpoint)")
            raise AgentFault(text)
        if reply.type != expected:
            raise AgentFault(f"agent sent a {reply.type!r} message where {expected!r} was due (answering {kind})")
        return reply

    def _action(self, reply) -> np.ndarray:
        if set(reply.arrays) != {"action"} or reply.fields:
            raise AgentFault(f"agent sent a malformed action message (arrays {sorted(reply.arrays)[:4]}, "
                             f"fields {sorted(reply.fields)[:4]})")
        return self.check(reply.arrays["action"])

    def act(self, obs) -> np.ndarray:
        return self._action(self.request("act", {"obs": obs}, expected="action"))

    def observe(self, obs, action, reward, next_obs, terminated, truncated, then_act: bool):
        """Show the agent one transition; with `then_act`, also get its action for `next_obs`."""
        # no fields, only arrays: the header is the same on every step (cached both ways)
        reply = self.request("observe", {"obs": obs, "action": action, "reward": np.float64(reward),
                                         "next_obs": next_obs, "flags": np.array([terminated, truncated, then_act])},
                             expected="action" if then_act else "ok")
        return self._action(reply) if then_act else None


def start_seed(unit: Unit, seed: int, task: int, phase: str, k: int, salt: Optional[int] = None) -> int:
    """The reset seed of the k-th `phase` episode of (task, seed). It depends on the env and
    split, not on the protocol: the scored episodes of every protocol start
    from the same states, so the iid-to-ood drop is a paired comparison (common random numbers).
    A sealed evaluation's `salt` (from its key) makes them states no submission can know."""
    key = [seed, task, zlib.crc32(f"{unit.env_id}/{unit.split}/{phase}".encode()), k] + ([] if salt is None else [salt])
    return int(np.random.default_rng(key).integers(2**31))


def _spaces(env) -> dict[str, np.ndarray]:
    return {"observation_low": env.observation_space.low, "observation_high": env.observation_space.high,
            "action_low": env.action_space.low, "action_high": env.action_space.high}


def visible_paths(submission: dict) -> tuple[str, ...]:
    """Paths the agent process must be able to read: its checkpoint and its factory's file
    (its folder) or package (found, not imported: an editable install's may live anywhere)."""
    paths = []
    if submission.get("checkpoint"):
        paths.append(submission["checkpoint"])
    module, _, _ = submission["agent"].rpartition(":")
    if module.endswith(".py"):
        paths.append(str(Path(module).resolve().parent))
    elif module:
        try:
            spec = importlib.util.find_spec(module.partition(".")[0])
        except (ImportError, ValueError):
            spec = None  # the probe says why it cannot be loaded
        if spec is not None:
            paths += list(spec.submodule_search_locations or [spec.origin or ""])
    return tuple(p for p in paths if p)


def check_paths(submission: dict, isolation: str) -> None:
    """Before the run: refuse a checkpoint, or an agent file's folder, that is or holds /tmp,
    $HOME or the datasets (the sandbox would bind it whole into the agent's view), and, where
    the agent runs as AGENT_UID (bubblewrap under root), one that uid cannot read."""
    checkpoint, (module, _, _) = submission.get("checkpoint"), submission["agent"].rpartition(":")
    refuse_broad(checkpoint, f"--checkpoint {checkpoint}")
    if module.endswith(".py"):
        refuse_broad(str(Path(module).resolve().parent), f"--agent {submission['agent']} (its folder)")
    if isolation == "bwrap" and os.geteuid() == 0:
        refuse_unreadable(checkpoint, f"--checkpoint {checkpoint}")
        if module.endswith(".py"):
            refuse_unreadable(str(Path(module).resolve().parent), f"--agent {submission['agent']}", tree=False)
            refuse_unreadable(module, f"--agent {submission['agent']}", tree=False)


def play_order(n_tasks: int, seeds) -> list[list[int]]:
    """[task, seed] blocks in the order a unit plays them: the tasks in an order drawn from the
    operating system's secret randomness, each task's seeds likewise, a task's seeds together.
    Neither the agent nor the submitter can know it in advance, so counting resets says nothing
    about the task; the unit records it, and a re-play follows it."""
    draw = secrets.SystemRandom()
    tasks = draw.sample(range(n_tasks), n_tasks)
    return [[task, seed] for task in tasks for seed in draw.sample(list(seeds), len(seeds))]


def check_play_order(order, n_tasks: int, seeds) -> list[list[int]]:
    """`order` if it plays every (task, seed) once with each task's seeds together, else ValueError."""
    pairs = [tuple(block) for block in order]
    tasks = list(dict.fromkeys(task for task, _ in pairs))
    if (sorted(pairs) != sorted((t, s) for t in range(n_tasks) for s in seeds)
            or [task for task, _ in pairs] != [t for t in tasks for _ in seeds]):
        raise ValueError("a play order must hold every (task, seed) of the unit once, each task's seeds together")
    return [list(block) for block in pairs]


def play_unit(unit: Unit, seeds, submission: dict, report, isolation: str, limits, episode_time_limit_s: float,
              order: list[list[int]], sealing: Optional[dict] = None) -> None:
    """Play every (task, seed) of `unit` in `order`, each task against a fresh agent process (no
    state, count or clock carries from one task to the next); `report(kind, payload)` receives
    each episode counted here. `sealing`: the key's task draw and start-state salt."""
    from bitr_envs.datasets import load

    env = gym.make(unit.env_id, split=unit.split)
    if sealing is not None:
        env.unwrapped.redraw_tasks(sealing["task_draw"])
    online = unit.protocol == "online"
    n_episodes = unit.explore_episodes + unit.episodes if online else unit.episodes
    try:
        for task in dict.fromkeys(block[0] for block in order):
            # one task's episodes in memory at a time, whatever the dataset's size
            context_data = load(unit.context_dataset, tasks=[task]) if unit.context_dataset else None
            report("loaded", task)  # the supervisor's clock restarts after the read
            task_seeds = [seed for t, seed in order if t == task]
            _play_task(unit, env, task, task_seeds, context_data, n_episodes, submission, report, isolation, limits,
                       episode_time_limit_s, sealing and sealing["start_salt"])
    finally:
        env.close()


def _start_agent(env, unit: Unit, submission: dict, isolation: str, limits, episode_time_limit_s: float):
    """A fresh agent process, initialised: (process, RemoteAgent)."""
    try:
        process = AgentProcess(isolation, limits, visible_paths(submission), sweep=True)
    except OSError:  # bubblewrap vanished or cannot be executed on this node: the fallback, unless insisted on
        if isolation != "bwrap" or os.environ.get(ISOLATION_CHOICE) == "bwrap":
            raise
        process = AgentProcess("process", limits, visible_paths(submission), sweep=True)
    agent = RemoteAgent(process, env.action_space, episode_time_limit_s)
    try:
        agent.request("init", _spaces(env), expected="ready", spec=absolute_spec(submission["agent"]),
                      env_id=unit.env_id, checkpoint=_absolute(submission.get("checkpoint")),
                      agent_args=submission.get("agent_args") or {})
    except BaseException:
        process.stop()
        raise
    return process, agent


def _play_task(unit: Unit, env, task: int, seeds, context_data, n_episodes: int, submission: dict, report,
               isolation: str, limits, episode_time_limit_s: float, salt: Optional[int]) -> None:
    """Every seed of one task against one fresh agent process, which is stopped at the end."""
    online = unit.protocol == "online"
    env_class = type(env.unwrapped)
    privileged = bool(submission.get("privileged"))  # decided by the evaluator, from the factory
    report("starting", task)  # loading an agent may take the startup limit
    process, agent = _start_agent(env, unit, submission, isolation, limits, episode_time_limit_s)
    try:
        report("ready", process.isolation)
        agent.next_episode()
        for seed in seeds:
            agent.request("reset")
            if privileged:
                agent.request("task", {"features": np.asarray(env_class.task_features(env.unwrapped.tasks[task]))})
            if context_data is not None:
                rng = np.random.default_rng([seed, task, zlib.crc32(unit.unit_id.encode())])
                agent.request("context", unit_context(unit, context_data, task, rng))
            for episode in range(n_episodes):
                phase = "explore" if online and episode < unit.explore_episodes else "score"
                k = episode - unit.explore_episodes if online and phase == "score" else episode
                obs, info = env.reset(seed=start_seed(unit, seed, task, phase, k, salt), options={"task": task})
                total, length, success, done = 0.0, 0, None, False  # success: where the env has it
                action = agent.act(obs)
                while True:
                    next_obs, reward, terminated, truncated, info = env.step(action)
                    total += reward
                    length += 1
                    if "success" in info:
                        success = bool(success) or bool(info["success"])
                    done = terminated or truncated
                    if online:  # the transition, and (unless the episode ended) the next action
                        next_action = agent.observe(obs, action, reward, next_obs, terminated, truncated, not done)
                    elif not done:
                        next_action = agent.act(next_obs)
                    if done:
                        break
                    obs, action = next_obs, next_action
                report("episode", {"task": task, "seed": seed, "episode": episode, "phase": phase,
                                   "return": float(total), "length": length, "success": success})
                agent.next_episode()
        try:
            process.channel.send("close")
            process.process.wait(2)
        except Exception:
            pass
    finally:
        report("log", process.stop())


def _absolute(path):
    return str(Path(path).resolve()) if path and Path(path).exists() else path


def absolute_spec(spec: str) -> str:
    """The factory spec with its file's path made absolute: the agent process runs elsewhere."""
    module, sep, attribute = spec.rpartition(":")
    if module.endswith(".py"):
        return f"{Path(module).resolve()}{sep}{attribute}"
    return spec


def worker_main(connection, unit: Unit, seeds, submission: dict, isolation: str, limits,
                episode_time_limit_s: float, order: list[list[int]], sealing: Optional[dict] = None) -> None:
    """Entry point of a unit's worker process: play the unit, reporting to the supervisor over
    `connection` as JSON (the supervisor never unpickles what a unit's process sends)."""

    def report(kind, payload):
        connection.send_bytes(json.dumps([kind, payload]).encode())

    become_subreaper()
    try:
        play_unit(unit, seeds, submission, report, isolation, limits, episode_time_limit_s, order, sealing)
        report("done", None)
    except AgentFault as fault:
        report("failed", str(fault))
    except Exception as err:  # the evaluator's own bug: say so, with where it happened
        report("failed", "evaluator error: " + "".join(traceback.format_exception(err)[-4:]).strip())
    finally:
        connection.close()
