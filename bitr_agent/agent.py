"""The trained agents behind the evaluator's API (`bitr evaluate --agent bitr_agent:load`).

Every method's `agent.pt` holds its algo name, the sizes of its networks ("model") and their
weights, so it loads from the file alone. The default agent (`ContextAgent`): offline, z is
inferred once from the context it is given; online, it starts from the prior z (the mean z of
the training tasks) and re-infers z from its own transitions after every step. It acts with the
mode of its policy. With `context_free=True` it ignores all context and keeps the prior z: the
context-free baseline of the same policy. A method whose test-time behaviour differs names its
own agent class (`agent_class` in its file).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from bitr_agent.model import Actor, TaskEncoder, TransitionEncoder

AGENT_FILE = "agent.pt"  # the finished agent in a training run's folder (`bitr-agent train --out`)


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


def model_spec(weights: dict) -> dict:
    """The networks' sizes; agents written before the file said so were BITR's."""
    if "model" in weights:
        return weights["model"]
    cfg = weights["config"]
    return {"obs_dim": len(weights["obs_mean"]), "act_dim": len(weights["action_scale"]), "z_dim": cfg["z_dim"],
            "hidden": cfg["hidden"], "encoder": "set", "width": cfg["width"]}


def build_encoder(spec: dict):
    if spec["encoder"] == "set":
        return TaskEncoder(spec["obs_dim"], spec["act_dim"], spec["z_dim"], spec["width"], spec.get("normalise", False))
    if spec["encoder"] == "transition":
        return TransitionEncoder(spec["obs_dim"], spec["act_dim"], spec["z_dim"], spec["width"],
                                 spec.get("normalise", False))
    return None


class ContextAgent:
    privileged = False

    def __init__(self, weights: dict, action_space, context_free: bool = False):
        torch.set_num_threads(1)  # tiny networks; the evaluator may run several units at once
        spec = model_spec(weights)
        self.algo = weights.get("algo", "bitr")
        self.obs_mean, self.obs_std = weights["obs_mean"], weights["obs_std"]
        self.action_scale = weights["action_scale"]
        self.encoder = build_encoder(spec)
        if self.encoder is not None:
            self.encoder.load_state_dict(weights["encoder"])
        self.actor = Actor(spec["obs_dim"] + spec["z_dim"], spec["act_dim"], spec["hidden"])
        self.actor.load_state_dict(weights["actor"])
        self.z_prior = weights["z_prior"]
        self.low, self.high = action_space.low, action_space.high
        self.context_free = context_free or self.encoder is None  # always the prior z, whatever the context
        self.rng = np.random.default_rng(0)  # for agents that explore at random
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


def _agent_file(env_id: str, checkpoint: str | None) -> Path:
    from bitr_envs.datasets.ids import env_slug

    if checkpoint is None:
        raise CheckpointError("bitr_agent:load needs --checkpoint (the folder `bitr-agent train --out` wrote).")
    path = Path(checkpoint)
    if path.is_dir():
        candidates = [path / AGENT_FILE, path / env_slug(env_id) / AGENT_FILE]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise CheckpointError(f"no BITR agent for {env_id} in {checkpoint}: expected "
                                  f"{' or '.join(map(str, candidates))}; train one with "
                                  f"`bitr-agent train --out {candidates[1].parent}`.")
    return path


def _load(env_id: str, action_space, checkpoint, context_free: bool, privileged: bool):
    from bitr_agent.methods import ALGOS

    weights = load_weights(_agent_file(env_id, checkpoint))
    if weights.get("env_id") != env_id:
        raise CheckpointError(f"{checkpoint} was trained on {weights.get('env_id')}, not {env_id}.")
    algo = weights.get("algo", "bitr")
    if algo not in ALGOS:
        raise CheckpointError(f"{checkpoint} holds an agent of unknown algo {algo!r} (known: {', '.join(ALGOS)}).")
    agent_class = ALGOS[algo].agent_class or ContextAgent
    if agent_class.privileged != privileged:
        raise CheckpointError(
            f"{checkpoint} holds a {algo} agent, which is told the task (a ceiling, never ranked): evaluate it "
            f"with --agent bitr_agent:load_privileged" if agent_class.privileged else
            f"{checkpoint} holds a {algo} agent, which is not privileged: evaluate it with --agent bitr_agent:load")
    return agent_class(weights, action_space, context_free)


def load(env_id: str, observation_space, action_space, checkpoint: str | None = None,
         context_free: bool = False) -> ContextAgent:
    """The evaluator's factory for every method's agent: `checkpoint` is a training --out
    folder, its agent.pt, or a folder of such folders named by env (`<dir>/cheetah-vel/agent.pt`),
    one per family of a suite. `--agent-args '{"context_free": true}'` evaluates the same policy
    with the prior z only."""
    return _load(env_id, action_space, checkpoint, context_free, privileged=False)


def load_privileged(env_id: str, observation_space, action_space, checkpoint: str | None = None,
                    context_free: bool = False) -> ContextAgent:
    """The same factory for agents that are told the task (`oracle_task`): the evaluator reads
    `privileged` off the factory, so their results are anchors, never ranked."""
    return _load(env_id, action_space, checkpoint, context_free, privileged=True)


load_privileged.privileged = True
