"""Collecting episodes and writing them as a Minari dataset (which episodes a dataset holds,
and the build that runs them, are `shards.py`'s).

Collection runs `num_envs` copies of the env in one process and takes one policy forward pass
per behaviour per step for all the copies that run it. Every episode has its own seeds (env
reset and action noise), given in its `Job`, so the same jobs give the same arrays whatever the
batch size.

The dataset is written into a scratch folder under the Minari root and moved into place only
when it is complete, so an interrupted build never leaves a dataset that loads.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gymnasium as gym
import numpy as np

from bitr_envs.datasets.behaviours import Behaviour, EpisodeNoise
from bitr_envs.datasets.ids import OTHER_TASK_POOL
from bitr_envs.datasets.recipes import Recipe
from bitr_envs.datasets.storage import (
    DATA_FILE,
    FORMAT_VERSION,
    content_sha256,
    datasets_root,
    file_sha256,
    install,
    minari_root_at,
)

Progress = Optional[Callable[[int], None]]  # called with the number of steps just collected
Stage = Optional[Callable[[str], None]]  # told what the writing is doing, for a progress display


@dataclass(frozen=True)
class Job:
    """One episode to collect."""

    task: int
    behaviour: str
    seed: int
    pursued: int  # the task the behaviour is given: `task`, except for a behaviour that pursues another


@dataclass
class Episode:
    task: int
    behaviour: int
    seed: int
    pursued: int
    observations: np.ndarray  # (T + 1, obs_dim)
    actions: np.ndarray  # (T, act_dim)
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())


def collect(
    env_id: str,
    split: str,
    jobs: list[Job],
    behaviours: dict[str, Behaviour],
    num_envs: int = 16,
    progress: Progress = None,
    task_draw: Optional[int] = None,
) -> list[Episode]:
    """Run every job to the end of its episode; episodes come back in job order. With
    `task_draw`, on the tasks of that secret draw of the split (a sealed evaluation's)."""
    envs = [gym.make(env_id, split=split) for _ in range(min(num_envs, len(jobs)))]
    if task_draw is not None:
        for env in envs:
            env.unwrapped.redraw_tasks(task_draw)
    env_class = type(envs[0].unwrapped)
    features = np.stack([env_class.task_features(t) for t in envs[0].unwrapped.tasks])
    space = envs[0].action_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    horizon = envs[0].spec.max_episode_steps
    names = list(behaviours)

    # What each env slot is doing, as arrays: a batch is gathered by indexing, and an episode
    # is written in place until it ends.
    n_slots, n_act = len(envs), len(low)
    running = np.full(n_slots, -1)  # index into `names` of the slot's behaviour; -1 = idle
    job_of = np.zeros(n_slots, dtype=np.int64)  # index into `jobs`
    step = np.zeros(n_slots, dtype=np.int64)
    observations = np.zeros((n_slots, horizon + 1) + envs[0].observation_space.shape, envs[0].observation_space.dtype)
    actions = np.zeros((n_slots, horizon, n_act), dtype=space.dtype)
    rewards = np.zeros((n_slots, horizon))
    terminations = np.zeros((n_slots, horizon), dtype=bool)
    truncations = np.zeros((n_slots, horizon), dtype=bool)
    noise_uniform = np.zeros((n_slots, horizon, n_act))
    noise_gaussian = np.zeros((n_slots, horizon, n_act))
    noise_explore = np.zeros((n_slots, horizon), dtype=bool)
    pursued_ids = np.array([job.pursued for job in jobs])  # whose features each policy sees

    pending = iter(range(len(jobs)))
    episodes: dict[int, Episode] = {}

    def start(slot: int) -> None:
        index = next(pending, None)
        if index is None:
            running[slot] = -1
            return
        job = jobs[index]
        observations[slot, 0], _ = envs[slot].reset(seed=job.seed, options={"task": job.task})
        noise = EpisodeNoise.draw(
            np.random.default_rng(job.seed), horizon, low, high, behaviours[job.behaviour].epsilon
        )
        noise_uniform[slot], noise_gaussian[slot], noise_explore[slot] = noise.uniform, noise.gaussian, noise.explore
        running[slot], job_of[slot], step[slot] = names.index(job.behaviour), index, 0

    def finish(slot: int) -> None:
        job, n = jobs[job_of[slot]], step[slot]
        episodes[int(job_of[slot])] = Episode(
            task=job.task,
            behaviour=behaviours[job.behaviour].label,
            seed=job.seed,
            pursued=job.pursued,
            observations=observations[slot, : n + 1].copy(),
            actions=actions[slot, :n].copy(),
            rewards=rewards[slot, :n].copy(),
            terminations=terminations[slot, :n].copy(),
            truncations=truncations[slot, :n].copy(),
        )
        start(slot)

    for slot in range(n_slots):
        start(slot)
    while (running >= 0).any():
        n_steps = 0
        for b, name in enumerate(names):
            active = np.flatnonzero(running == b)
            if not len(active):
                continue
            t = step[active]
            actions[active, t] = behaviours[name].act(
                observations[active, t], features[pursued_ids[job_of[active]]], noise_uniform[active, t],
                noise_gaussian[active, t], noise_explore[active, t], low, high,
            )
            for slot, k in zip(active.tolist(), t.tolist()):
                next_obs, reward, terminated, truncated, _ = envs[slot].step(actions[slot, k])
                observations[slot, k + 1] = next_obs
                rewards[slot, k] = reward
                terminations[slot, k] = terminated
                truncations[slot, k] = truncated
                step[slot] = k + 1
                n_steps += 1
                if terminated or truncated:
                    finish(slot)
        if progress is not None:
            progress(n_steps)
    for env in envs:
        env.close()
    return [episodes[i] for i in range(len(jobs))]


# ----- writing --------------------------------------------------------------------------------
def task_episode_ranges(tasks: Iterable[int], n_tasks: int) -> list[list[list[int]]]:
    """Per task, the [start, stop) ranges of episode ids that hold its episodes (the dataset's
    `bitr_task_episodes`); a task-major dataset has one range per task."""
    ranges: list[list[list[int]]] = [[] for _ in range(n_tasks)]
    for i, task in enumerate(tasks):
        own = ranges[task]
        if own and own[-1][1] == i:
            own[-1][1] = i + 1
        else:
            own.append([i, i + 1])
    return ranges


def write_dataset(r: Recipe, episodes: Iterable[Episode], references: dict, behaviours: dict[str, Behaviour],
                  on_stage: Stage = None) -> Path:
    """Write the episodes as the Minari dataset `r.dataset_id`, atomically; returns its folder.
    `on_stage` is told when the episodes are in and their checksumming starts.

    `episodes` may be a generator (`shards.episodes_of`): they are handed to Minari one at a time,
    in one pass over one open hdf5 file, so memory holds what the generator holds. One pass
    matters for the checksum too: Minari's `update_episodes` called once per part reopens the
    file each time, and the file's bytes then differ from a one-call write of the same episodes.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    tasks: list[int] = []
    records_pursuit = r.pool == OTHER_TASK_POOL  # elsewhere every behaviour pursues the env's task

    def buffers():
        for i, e in enumerate(episodes):
            tasks.append(e.task)
            infos = {
                "task_id": np.full(len(e.observations), e.task, dtype=np.int64),
                "behaviour": np.full(len(e.observations), e.behaviour, dtype=np.int64),
            }
            if records_pursuit:
                infos["pursued_task"] = np.full(len(e.observations), e.pursued, dtype=np.int64)
            yield EpisodeBuffer(
                id=i,
                seed=e.seed,
                options={"task": e.task},
                observations=e.observations,
                actions=e.actions,
                rewards=e.rewards,
                terminations=e.terminations,
                truncations=e.truncations,
                infos=infos,
            )

    scratch = Path(tempfile.mkdtemp(prefix=".bitr-build-", dir=datasets_root()))
    try:
        with minari_root_at(scratch):
            env = gym.make(r.env_id, split=r.split)
            warnings.filterwarnings("ignore", message="`code_permalink` is set to None")
            dataset = minari.create_dataset_from_buffers(
                dataset_id=r.dataset_id,
                buffer=buffers(),  # one pass, one open file: see the docstring
                env=env.spec,
                eval_env=env.spec,
                algorithm_name=f"bitr behaviour pool {r.pool!r}",
                author="BITR-Bench",
                author_email="see the bitr-bench package metadata",
                code_permalink=None,  # no public link to versioned code; the description names the card
                ref_min_score=float(np.mean(references["random"])),
                ref_max_score=float(np.mean(references["expert"])),
                description=_description(r),
                data_format="hdf5",
                requirements=[f"bitr-bench=={package_version()}"],
            )
            data_path = dataset.storage.data_path
            if on_stage is not None:
                size = (data_path / DATA_FILE).stat().st_size
                on_stage(f"checksumming the Minari file ({len(tasks)} episodes, {size / 1e6:.1f} MB)")
            dataset.storage.update_metadata(
                {
                    "bitr_format_version": FORMAT_VERSION,
                    "bitr_env_id": r.env_id,
                    "bitr_split": r.split,
                    "bitr_pool": r.pool,
                    "bitr_profile": r.profile,
                    "bitr_recipe_sha256": r.fingerprint(),
                    **({"bitr_sealed": True} if r.task_draw is not None else {}),  # public ones: as they were
                    "bitr_recipe_file": r.card.path.name,
                    "bitr_behaviours": [b for b in behaviours],
                    "bitr_pool_behaviours": sorted(r.shares),
                    "bitr_reference_returns": references,
                    "bitr_task_episodes": task_episode_ranges(tasks, r.num_tasks),
                    "bitr_data_sha256": file_sha256(data_path / DATA_FILE),
                }
            )
            dataset.storage.update_metadata({"bitr_content_sha256": content_sha256(dataset.storage.metadata)})
        return install(scratch, r.dataset_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _description(r: Recipe) -> str:
    """What `minari show` prints first: Minari's own "Download" line names `minari download`,
    which cannot fetch a dataset that is built where it is used, so this says what can."""
    counts = ", ".join(f"{b} {c}" for b, c in r.episode_counts().items())
    return (
        f"{r.env_id}, split {r.split!r}, behaviour pool {r.pool!r}, profile {r.profile!r}: "
        f"{r.episodes_per_task} episodes per task ({counts}). A BITR-Bench dataset, not on Minari's "
        f"servers (`minari download` cannot fetch it): build it with `bitr datasets build {r.dataset_id}` "
        f"(from the recipe card bitr_envs/datasets/cards/{r.card.path.name}, installed with bitr-bench) "
        f"or copy it from a mirror with `bitr datasets download {r.dataset_id} --remote file:///path/to/mirror` "
        "(or `--remote hf://<organisation>`). Per-step infos: task_id (index in the split) and behaviour "
        "(index in bitr_behaviours)"
        + ("; pursued_task (the task the behaviour was given, never task_id)." if r.pool == OTHER_TASK_POOL else ".")
    )


def package_version() -> str:
    """The installed bitr-bench's version: in a dataset's requirements and in its shards' keys."""
    try:
        return importlib.metadata.version("bitr-bench")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"
