"""The trained BITR agent behind the evaluator's API (`bitr evaluate --agent bitr_agent:load`).

Offline: z is inferred once from the context it is given. Online: it starts from the prior z
(the mean z of the training tasks) and re-infers z from its own transitions after every step.
It acts with the mode of its policy. With `context_free=True` it ignores all context and keeps
the prior z: the context-free baseline that BITR has to beat.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from bitr_agent.model import Actor, TaskEncoder


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely; the message says why."""


def load_weights(path: str | Path) -> dict:
    """Load a checkpoint as data only: tensors and plain values, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}: train one with `bitr-agent train ... --out DIR`.")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} is not a plain-weights checkpoint (it asks to run code while loading, which "
            f"is refused): {str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is damaged or not a PyTorch checkpoint: {err}") from None


class BITRAgent:
    def __init__(self, weights: dict, action_space, context_free: bool = False):
        torch.set_num_threads(1)  # tiny networks; the evaluator may run several units at once
        cfg = weights["config"]
        self.obs_mean, self.obs_std = weights["obs_mean"], weights["obs_std"]
        self.action_scale = weights["action_scale"]
        obs_dim, act_dim = len(self.obs_mean), len(self.action_scale)
        self.encoder = TaskEncoder(obs_dim, act_dim, cfg["z_dim"], cfg["width"])
        self.encoder.load_state_dict(weights["encoder"])
        self.actor = Actor(obs_dim + cfg["z_dim"], act_dim, cfg["hidden"])
        self.actor.load_state_dict(weights["actor"])
        self.z_prior = weights["z_prior"]
        self.low, self.high = action_space.low, action_space.high
        self.context_free = context_free  # the ablation: always the prior z, whatever the context
        self.reset()

    def _normalise(self, obs) -> torch.Tensor:
        return (torch.as_tensor(np.asarray(obs), dtype=torch.float32) - self.obs_mean) / self.obs_std

    @torch.no_grad()
    def _infer(self) -> None:
        if self.context_free:
            return
        c = self.context
        self.z = self.encoder(self._normalise(c["observations"])[None],
                              torch.as_tensor(c["actions"], dtype=torch.float32)[None] / self.action_scale,
                              torch.as_tensor(c["rewards"], dtype=torch.float32)[None],
                              self._normalise(c["next_observations"])[None])[0]

    def reset(self) -> None:
        self.z = self.z_prior
        self.context = None
        self._online: list[tuple] = []

    def set_context(self, transitions) -> None:
        self.context = transitions
        self._infer()

    @torch.no_grad()
    def act(self, obs):
        _, _, mode = self.actor(torch.cat([self._normalise(obs), self.z]))
        action = (mode * self.action_scale).numpy()
        return np.clip(action, self.low, self.high).astype(self.low.dtype)

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self._online.append((obs, action, reward, next_obs))
        obs, action, reward, next_obs = (np.asarray(x) for x in zip(*self._online))
        self.context = {"observations": obs, "actions": action, "rewards": reward, "next_observations": next_obs}
        self._infer()


def load(env_id: str, observation_space, action_space, checkpoint: str | None = None,
         context_free: bool = False) -> BITRAgent:
    """The evaluator's factory: `checkpoint` is a training --out folder, its agent.pt, or a folder
    of such folders named by env (`<dir>/cheetah-vel/agent.pt`), one per family of a suite.
    `--agent-args '{"context_free": true}'` evaluates the same policy with the prior z only."""
    from bitr_envs.datasets.ids import env_slug

    if checkpoint is None:
        raise CheckpointError("bitr_agent:load needs --checkpoint (the folder `bitr-agent train --out` wrote).")
    path = Path(checkpoint)
    if path.is_dir():
        candidates = [path / "agent.pt", path / env_slug(env_id) / "agent.pt"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise CheckpointError(f"no BITR agent for {env_id} in {checkpoint}: expected "
                                  f"{' or '.join(map(str, candidates))}; train one with "
                                  f"`bitr-agent train --out {candidates[1].parent}`.")
    weights = load_weights(path)
    if weights.get("env_id") != env_id:
        raise CheckpointError(f"{checkpoint} was trained on {weights.get('env_id')}, not {env_id}.")
    return BITRAgent(weights, action_space, context_free)
