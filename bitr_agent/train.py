"""Training any method of the harness on one offline meta-RL dataset, top to bottom.

Phase 1 (`wm_iterations` updates) trains the method's task encoder (and, for BITR, its world
model and behaviour adversary); phase 2 (`sac_iterations`) freezes them and trains the shared
SAC+CQL learner conditioned on z (on real transitions and, where the method imagines, 1-step
model rollouts). The settings are `bitr_agent.config`'s; the run's folder (checkpoints, exact
resume, metrics, the agent file) is `bitr_agent.checkpoint`'s; what a method changes lives in
its own file (`bitr_agent/methods/`).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bitr_agent.checkpoint import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    check_run_folder,
    resume,
    save_agent,
    save_checkpoint,
)
from bitr_agent.config import Config, resolve
from bitr_agent.data import Sampler, TaskArrays
from bitr_agent.diagnostics import DIAGNOSTICS, check_health, diagnostics
from bitr_agent.methods import method

POLICY_METRICS = ["bellman", "cql_penalty", "actor", "alpha", "q"]


def train(cfg: Config, out: Path, progress=True, stop_after: int | None = None, restart: bool = False) -> dict:
    """Train (or resume) and write out/agent.pt; `stop_after` ends early, as a kill would.
    `restart` trains a finished run without a checkpoint (a committed one) again from scratch.
    With `progress`, says what it does and how long it took, from the first second on."""
    import gymnasium as gym

    import bitr_envs  # noqa: F401  (registers the bitr/ ids)
    from bitr_envs import datasets
    from bitr_envs.registry import entry

    say = print if progress else _quiet
    cfg = resolve(cfg)
    algo = method(cfg.algo)
    torch.set_num_threads(cfg.threads)
    check_run_folder(out, restart)
    out.mkdir(parents=True, exist_ok=True)

    # the data, in normalised units
    clock = time.monotonic()
    say(f"{cfg.algo}, seed {cfg.seed}: loading {cfg.dataset} ...", flush=True)
    data = datasets.load(cfg.dataset)
    all_obs = np.concatenate([t.observations for t in data.tasks])
    obs_mean, obs_std = all_obs.mean(0), all_obs.std(0) + 1e-3
    space = gym.make(data.env_id).action_space
    action_scale = np.maximum(np.abs(space.low), np.abs(space.high)).astype(np.float32)
    env_class = entry(data.env_id).env_class
    features = _features(env_class, data.split, len(data.tasks))
    tasks = [TaskArrays(t, obs_mean, obs_std, action_scale, cfg.history, f) for t, f in zip(data.tasks, features)]
    say(f"  {len(data.tasks)} tasks, {len(all_obs):,} transitions, {len(data.behaviour_names)} behaviour "
        f"policies ({_since(clock)})", flush=True)
    held_out = _held_out(cfg.dataset, obs_mean, obs_std, action_scale, cfg.history, env_class, say)

    # the networks, fresh or as the checkpoint left them
    clock = time.monotonic()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    learner = algo(cfg, all_obs.shape[1], space.shape[0], len(data.behaviour_names), len(data.tasks),
                   task_dim=len(features[0]))
    say(f"built {', '.join(learner.nets) or 'no encoder'}, actor and critics ({_since(clock)})", flush=True)
    iteration, elapsed = 0, 0.0
    if (out / CHECKPOINT_FILE).exists():
        clock = time.monotonic()
        iteration, elapsed = resume(out, learner, cfg, rng)
        say(f"resumed from {out / CHECKPOINT_FILE} at iteration {iteration} ({_since(clock)})", flush=True)
    else:  # a run killed before its first checkpoint starts over, and so do its metrics
        (out / METRICS_FILE).unlink(missing_ok=True)
    sampler = Sampler(tasks, cfg, rng)
    # No value can exceed the largest reward's discounted sum (check_health allows ten times it).
    max_return = max(1.0, max(float(np.abs(t.rewards).max()) for t in data.tasks)) / (1 - cfg.gamma)

    # the two phases; a method without a representation phase spends the same budget on its policy
    phase1 = cfg.wm_iterations if algo.representation else 0
    total = cfg.wm_iterations + cfg.sac_iterations
    say(f"training{f' from iteration {iteration}' if iteration else ''}: {phase1} representation then "
        f"{total - phase1} policy updates, a line every {cfg.log_every}, a checkpoint every {cfg.checkpoint_every}",
        flush=True)
    columns = metric_columns(algo)
    started = time.monotonic() - elapsed  # "seconds" counts the work kept, over every process of the run
    last: dict = {}
    while iteration < total:
        if stop_after is not None and iteration >= stop_after:
            return last
        if iteration < phase1:
            phase = "representation"
            last = learner.update_representation(sampler, progress=iteration / phase1)
        else:
            phase = "policy"
            last = learner.update_policy(sampler)
        iteration += 1
        if iteration % cfg.log_every == 0 or iteration in (phase1, total):
            row = {"iteration": iteration, "phase": phase, "seconds": round(time.monotonic() - started, 1), **last}
            if held_out and (iteration == phase1 or iteration == total):
                row.update(diagnostics(learner, held_out, cfg, np.random.default_rng(0)))
            _append_csv(out / METRICS_FILE, row, columns)
            say(f"[{iteration}/{total}] {phase}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()
                                                               if isinstance(v, float)), flush=True)
            check_health(last, phase, iteration, cfg, max_return, out)
        if iteration % cfg.checkpoint_every == 0 or iteration == total:
            save_checkpoint(out / CHECKPOINT_FILE, learner, cfg, iteration, rng, time.monotonic() - started)
    save_agent(out, learner, cfg, data.env_id, obs_mean, obs_std, action_scale, sampler)
    return last


def metric_columns(algo) -> list[str]:
    """metrics.csv's columns for a method: its phase-1 losses, the policy's, the diagnostics."""
    return ["iteration", "phase", "seconds", *algo.loss_names,
            *[m for m in POLICY_METRICS if m not in algo.loss_names], *DIAGNOSTICS]


def _append_csv(path: Path, row: dict, columns: list[str]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _features(env_class, split: str, n: int) -> list:
    """Each task's own parameters as a vector (only the privileged ceiling trains on them)."""
    return [np.asarray(env_class.task_features(p), np.float32) for p in env_class.split_tasks(split)][:n]


def _held_out(dataset_id: str, obs_mean, obs_std, action_scale, history: int, env_class, say):
    """The same family's test-task data, for diagnostics only (never trained on)."""
    from bitr_envs import datasets
    from bitr_envs.datasets.ids import DatasetId
    from bitr_envs.datasets.storage import exists

    held_out_id = str(DatasetId.parse(dataset_id).replace(split="test"))
    if held_out_id == dataset_id or not exists(held_out_id):
        print(f"no held-out dataset {held_out_id}: diagnostics skipped", file=sys.stderr)
        return None
    clock = time.monotonic()
    say(f"loading {held_out_id} (held out, for the diagnostics) ...", flush=True)
    data = datasets.load(held_out_id)
    features = _features(env_class, data.split, len(data.tasks))
    say(f"  {len(data.tasks)} tasks ({_since(clock)})", flush=True)
    return [TaskArrays(t, obs_mean, obs_std, action_scale, history, f) for t, f in zip(data.tasks, features)]


def _since(clock: float) -> str:
    return f"{time.monotonic() - clock:.1f} s"


def _quiet(*args, **kwargs) -> None:
    pass
