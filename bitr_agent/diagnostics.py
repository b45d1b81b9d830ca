"""What a run's encoder learned and whether the run is healthy.

- `diagnostics`: at the end of each phase, on the family's held-out test tasks, how well z names
  the task and the behaviour policy (metrics.csv's last columns);
- `check_health`: stops a run whose encoder collapsed or whose critic diverged;
- `probes_table`: those probes of every finished run of a sweep folder, as a Markdown table.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import torch

from bitr_agent.agent import AGENT_FILE
from bitr_agent.checkpoint import METRICS_FILE
from bitr_agent.data import Sampler, TaskArrays
from bitr_agent.learner import Method
from bitr_agent.methods import ALGOS
from bitr_envs.datasets.ids import env_slug
from bitr_envs.registry import ENVS

DIAGNOSTICS = ["task_id_accuracy", "behaviour_probe_accuracy", "behaviour_chance", "wm_one_step_mse"]
PROBES = ("task_id_accuracy", "behaviour_probe_accuracy")


@torch.no_grad()
def diagnostics(learner: Method, held_out: list[TaskArrays], cfg, rng: np.random.Generator) -> dict:
    """On tasks never trained on: can z name the task, can a probe name the behaviour policy
    from z (lower = more invariant), and the world model's one-step error (if it has one)."""
    sampler = Sampler(held_out, dataclasses.replace(cfg, task_batch=len(held_out)), rng)
    zs, tasks, behaviours = [], [], []
    for _ in range(8):
        ids = np.arange(len(held_out))
        context, b = sampler.contexts(ids)
        zs.append(learner.z_of(context, ids, sampler))
        tasks.append(ids)
        behaviours.append(b)
    z, task, behaviour = torch.cat(zs).numpy(), np.concatenate(tasks), np.concatenate(behaviours)
    out = {
        "task_id_accuracy": _nearest_centroid_accuracy(z, task),
        "behaviour_probe_accuracy": _nearest_centroid_accuracy(z, behaviour),
        "behaviour_chance": 1.0 / len(np.unique(behaviour)),
    }
    error = learner.world_model_error(sampler)
    if error is not None:
        out["wm_one_step_mse"] = error
    return out


def _nearest_centroid_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid classification: how well z separates the labels."""
    correct = 0
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        classes = np.unique(labels[keep])
        centroids = np.stack([z[keep & (labels == c)].mean(0) for c in classes])
        correct += classes[np.argmin(((centroids - z[i]) ** 2).sum(1))] == labels[i]
    return float(correct / len(z))


class TrainingFailed(RuntimeError):
    """Training went somewhere no later update recovers from; no agent.pt is written."""


def check_health(losses: dict, phase: str, iteration: int, cfg, max_return: float, out: Path) -> None:
    """Stop a run whose encoder collapsed or whose critic diverged, instead of writing a useless agent.
    A critic without the conservative penalty (cql_weight 0, the `bitr-no-cql` ablation) is expected to
    overestimate on offline data: that is what the ablation measures, so it trains on (its q is logged)."""
    where = f"{out} at iteration {iteration} ({phase} phase)"
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise TrainingFailed(f"{where}: non-finite {', '.join(bad)}. Rerun into a new --out with another "
                             f"--seed or a lower learning rate (--wm-lr / --lr).")
    chance = math.log(cfg.task_batch)  # InfoNCE when every task gets the same z
    if (phase == "representation" and "contrastive" in losses and iteration >= cfg.wm_iterations // 5
            and abs(losses["contrastive"] - chance) < 1e-3):
        raise TrainingFailed(
            f"{where}: the task encoder collapsed: every task gets the same z (InfoNCE = ln({cfg.task_batch}) = "
            f"{chance:.3f}), so no context can inform the policy. Seen when the behaviour adversary's reversed "
            f"gradient grew z's norm without bound (Point-Robot-Sparse, --no-unit-z); --unit-z, the lite and paper "
            f"profiles' setting, keeps z on the unit sphere. Rerun into a new --out with --unit-z, "
            f"--adversary-weight 0 or another --seed.")
    if phase == "policy" and cfg.cql_weight > 0 and "q" in losses and abs(losses["q"]) > 10 * max_return:
        raise TrainingFailed(
            f"{where}: the critic diverged (mean Q {losses['q']:.3g}, while no return can exceed "
            f"{max_return:.3g}). Rerun into a new --out with another --seed, a larger --cql-weight or a lower --lr.")


def probes_table(runs: Path) -> str:
    """The encoders' end-of-training probes of a sweep folder (`<runs>/<algo>/seed<k>/<family>/
    metrics.csv`) as a Markdown table: per method and family, how often z named the held-out task
    and the behaviour policy, each finished run's (its agent.pt written) in seed order. Folders
    that are not a method, a seed or a family are not runs and are passed over."""
    families = [env_slug(env_id) for env_id in ENVS]
    found = {}  # (algo, family) -> [(seed, probes)]
    for algo in ALGOS:
        for folder in (runs / algo).glob("seed*"):
            seed = re.fullmatch(r"seed(\d+)", folder.name)
            if seed is None:
                continue
            for family in families:
                finished = (folder / family / AGENT_FILE).is_file()
                probes = _last_probes(folder / family / METRICS_FILE) if finished else None
                if probes is not None:
                    found.setdefault((algo, family), []).append((int(seed[1]), probes))
    if not found:
        raise ValueError(f"no finished run under {runs}: give a `bitr-agent sweep --out` folder, whose runs are "
                         f"<algo>/seed<k>/<family>/{AGENT_FILE}")
    found_algos, found_families = {a for a, _ in found}, {f for _, f in found}
    families = [f for f in families if f in found_families]
    lines = ["| Method | " + " | ".join(f"`{f}` {what}" for f in families for what in ("task", "behaviour")) + " |",
             "| --- |" + " ---: |" * (2 * len(families))]
    for algo in ALGOS:
        if algo in found_algos:
            cells = [" / ".join(f"{100 * probes[k]:.0f}%" for _, probes in sorted(found.get((algo, f), []))) or "–"
                     for f in families for k in range(len(PROBES))]
            lines.append(f"| `{algo}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _last_probes(metrics: Path) -> tuple[float, ...] | None:
    """The probes of the last row of a metrics.csv that holds them, if any."""
    if not metrics.is_file():
        return None
    with open(metrics, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get(PROBES[0])]
    if not rows:
        return None
    try:
        return tuple(float(rows[-1][key]) for key in PROBES)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{metrics}: its last diagnostics row has no number for {' or '.join(PROBES)}: "
                         f"train that run again or remove its folder") from None
