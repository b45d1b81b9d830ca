"""Offline data for every method: per-task arrays in normalised units and a meta-batch sampler."""

from __future__ import annotations

import numpy as np
import torch


class TaskArrays:
    """One task's transitions in normalised units, with what the samplers need precomputed.
    `features` are the task's own parameters (only the privileged ceiling reads them)."""

    def __init__(self, task, obs_mean, obs_std, action_scale, history: int, features=None):
        self.obs = ((task.observations - obs_mean) / obs_std).astype(np.float32)
        self.next_obs = ((task.next_observations - obs_mean) / obs_std).astype(np.float32)
        self.act = (task.actions / action_scale).astype(np.float32)
        self.rew = task.rewards.astype(np.float32)
        self.done = task.terminals.astype(np.float32)
        self.behaviour = task.behaviours
        self.features = None if features is None else np.asarray(features, np.float32)
        ends = task.terminals | task.timeouts
        episode = np.r_[0, np.cumsum(ends)[:-1]]
        first = np.r_[True, episode[1:] != episode[:-1]]
        self.prev_rew = np.where(first, 0.0, np.r_[0.0, self.rew[:-1]]).astype(np.float32)
        last = np.arange(len(self.rew)) + history - 1
        ok = last < len(self.rew)
        ok[ok] &= episode[last[ok]] == episode[ok]
        self.window_starts = np.flatnonzero(ok)  # histories that stay inside one episode
        self.rows_of = {int(b): np.flatnonzero(self.behaviour == b) for b in np.unique(self.behaviour)}


class Sampler:
    """Meta-batches as torch tensors, drawn with one numpy Generator (whose state is saved)."""

    def __init__(self, tasks: list[TaskArrays], cfg, rng: np.random.Generator):
        self.tasks, self.cfg, self.rng = tasks, cfg, rng

    def task_ids(self) -> np.ndarray:
        return self.rng.choice(len(self.tasks), size=min(self.cfg.task_batch, len(self.tasks)), replace=False)

    def contexts(self, task_ids, different_from=None):
        """One context set per task, all from one behaviour policy; with `different_from`
        (the behaviours of another view), a different behaviour wherever the task has one."""
        rows, behaviours = [], []
        for i, t in enumerate(task_ids):
            options = list(self.tasks[t].rows_of)
            if different_from is not None and len(options) > 1:
                options.remove(int(different_from[i]))
            b = options[self.rng.integers(len(options))]
            rows.append(self.rng.choice(self.tasks[t].rows_of[b], size=self.cfg.context_size))
            behaviours.append(b)
        return self._stack(task_ids, rows, ("obs", "act", "rew", "next_obs")), np.array(behaviours)

    def windows(self, task_ids, n: int):
        rows = []
        for t in task_ids:
            starts = self.rng.choice(self.tasks[t].window_starts, size=n)
            rows.append(starts[:, None] + np.arange(self.cfg.history))
        return self._stack(task_ids, rows, ("obs", "prev_rew", "act", "rew", "next_obs", "done"))

    def transitions(self, task_ids, n: int):
        rows = [self.rng.integers(len(self.tasks[t].rew), size=n) for t in task_ids]
        return self._stack(task_ids, rows, ("obs", "act", "rew", "next_obs", "done"))

    def features(self, task_ids) -> torch.Tensor:
        return torch.as_tensor(np.stack([self.tasks[t].features for t in task_ids]))

    def _stack(self, task_ids, rows, keys):
        return {k: torch.as_tensor(np.stack([getattr(self.tasks[t], k)[r] for t, r in zip(task_ids, rows)]))
                for k in keys}


def encode(encoder, context):
    return encoder(context["obs"], context["act"], context["rew"], context["next_obs"])


def flat(batch: dict) -> dict:
    """(tasks, n, ...) -> (tasks * n, ...) for every array of a batch."""
    return {k: v.flatten(0, 1) for k, v in batch.items()}
