"""Does a Reach-Sparse policy steer toward the goal its z names?

For each trained run of the given methods, on the ten held-out test tasks: z is each task's mean z
over 8 contexts of its test data drawn as in training (`context_size` transitions from one
behaviour each; the evaluator's context is whole episodes instead), and for the task-given ceiling
the task's own features; at the same 500 states of that data for every run, the policy acts under
each task's z in turn. Printed per run:

- `toward named goal`: the mean cosine between the action's hand displacement (its first three
  dims) and the direction from the hand (the first three observation dims) to the goal of the
  task whose z it was given;
- `toward other goals`: the same cosine to the other nine tasks' goals (what a policy that
  ignores the task, or misreads it, scores as well);
- `action moves with z`: the mean distance between the actions at one state under two tasks' z,
  over the mean distance between the actions at two states under one z.

Needs the family's lite test dataset (`bitr datasets build 'bitr/reach-sparse/*-lite-v0'`).
Usage: python docs/analysis/reach_goal_direction.py leaderboard/runs/lite focal cbc oracle_task
"""

import sys
import types
from pathlib import Path

import numpy as np
import torch

from bitr_agent.agent import ContextAgent, load_weights
from bitr_agent.data import Sampler, TaskArrays, encode
from bitr_agent.train import _features
from bitr_envs import datasets
from bitr_envs.registry import entry

DATASET = "bitr/reach-sparse/test-iid-lite-v0"


def mean_pairwise_distance(x: np.ndarray) -> np.ndarray:
    """Mean distance over ordered pairs along axis 0 of x (n, ..., d) -> (...)."""
    n = len(x)
    return np.linalg.norm(x[:, None] - x[None], axis=-1).sum((0, 1)) / (n * (n - 1))


def unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)


@torch.no_grad()
def measure(agent_file: Path, data) -> tuple[float, float, float]:
    weights = load_weights(agent_file)
    config = weights["config"]
    ones = np.ones(len(weights["action_scale"]), np.float32)
    agent = ContextAgent(weights, types.SimpleNamespace(low=-ones, high=ones))
    scale = (weights["obs_mean"].numpy(), weights["obs_std"].numpy(), weights["action_scale"].numpy())
    env_class = entry(data.env_id).env_class
    features = _features(env_class, data.split, len(data.tasks))  # what the ceiling trains and acts on
    tasks = [TaskArrays(t, *scale, config["history"], f) for t, f in zip(data.tasks, features)]
    ids = np.arange(len(tasks))
    sampler = Sampler(tasks, types.SimpleNamespace(context_size=config["context_size"], task_batch=len(ids)),
                      np.random.default_rng(0))
    if weights["algo"] == "oracle_task":
        z = sampler.features(ids).numpy()
    else:
        z = np.mean([encode(agent.encoder, sampler.contexts(ids)[0]).numpy() for _ in range(8)], axis=0)

    state_rng = np.random.default_rng(1)
    states = torch.as_tensor(np.concatenate([t.obs[state_rng.integers(len(t.obs), size=50)] for t in tasks]))
    actions = np.stack([agent.actor(torch.cat([states, torch.as_tensor(zt).expand(len(states), -1)], 1))[2].numpy()
                        for zt in z], axis=1)  # (states, tasks, action)
    hand = (states.numpy() * scale[1] + scale[0])[:, :3]
    goals = np.stack([p["goal"] for p in env_class.split_tasks(data.split)])
    cosine = np.einsum("std,sud->stu", unit(actions[..., :3]), unit(goals[None] - hand[:, None]))
    same_task = np.eye(len(ids), dtype=bool)
    named, other = cosine[:, same_task].mean(), cosine[:, ~same_task].mean()
    across_z = mean_pairwise_distance(actions.transpose(1, 0, 2)).mean()
    across_states = mean_pairwise_distance(actions[state_rng.choice(len(actions), 100, replace=False)]).mean()
    return named, other, across_z / across_states


def main(runs: str, algos: list[str]) -> None:
    torch.set_num_threads(1)
    data = datasets.load(DATASET)
    print("| Method | seed | toward named goal | toward other goals | action moves with z |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for algo in algos:
        for agent_file in sorted(Path(runs).glob(f"{algo}/seed*/reach-sparse/agent.pt")):
            named, other, moves = measure(agent_file, data)
            print(f"| `{algo}` | {agent_file.parts[-3][4:]} | {named:+.2f} | {other:+.2f} | {moves:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
