"""Loading a BITR dataset into contiguous per-task arrays, and sampling from them.

    data = bitr_envs.datasets.load("bitr/point-robot-sparse/train-iid-lite-v0")
    data.tasks[3].observations          # (N, obs_dim), all of task 3's transitions
    batch = data.sample_batch([0, 5, 7], 256, rng)          # arrays of shape (3, 256, ...)
    context = data.sample_context(3, 32, rng)               # 32 transitions of task 3
    one = bitr_envs.datasets.load(ID, tasks=[3])             # reads only task 3's episodes

The file is read once, episode by episode, straight into numpy; sampling is pure indexing.
A dataset records which episodes hold each task (`bitr_task_episodes`), so `tasks=[...]` reads
those episodes and no others: memory is what the chosen tasks hold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from bitr_envs.datasets.storage import (
    FORMAT_VERSION,
    content_sha256,
    data_file,
    datasets_root,
    file_sha256,
    metadata_file,
    pinned,
)


class DatasetError(Exception):
    """A dataset that is missing, damaged or from another version; the message says the fix."""


def _fixes(dataset_id: str) -> str:
    return (
        f"Check it with `bitr datasets verify {dataset_id}`, then rebuild it with "
        f"`bitr datasets build --force {dataset_id}` or download it again with "
        f"`bitr datasets download --force {dataset_id}`."
    )


@dataclass
class TaskData:
    """Every transition of one task, as contiguous arrays of equal length."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray  # the episode ended in a terminal state (no bootstrapping)
    timeouts: np.ndarray  # the episode was cut by the horizon
    behaviours: np.ndarray  # behaviour label of each transition
    pursued: np.ndarray  # the task its behaviour was given: this task, except in the other-task pool

    def __len__(self) -> int:
        return len(self.rewards)

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name)[indices] for f in fields(self)}


@dataclass
class OfflineData:
    dataset_id: str
    env_id: str
    split: str
    pool: str
    behaviour_names: list[str]
    reference_returns: dict[str, list[float]]
    # index = task id in the split; None for a task that `load(..., tasks=[...])` did not read
    tasks: list[Optional[TaskData]]

    @property
    def task_ids(self) -> list[int]:
        """The tasks that were read (all of the split's unless `load` was given `tasks`)."""
        return [i for i, t in enumerate(self.tasks) if t is not None]

    @property
    def num_transitions(self) -> int:
        return sum(len(t) for t in self.tasks if t is not None)

    def task(self, task_id: int) -> TaskData:
        """One task's data, or a ValueError if it was not read."""
        if not 0 <= task_id < len(self.tasks):
            raise ValueError(f"{self.dataset_id} has tasks 0-{len(self.tasks) - 1}, not {task_id}.")
        if self.tasks[task_id] is None:
            raise ValueError(f"Task {task_id} of {self.dataset_id} was not loaded (loaded: {self.task_ids}); "
                             f"load it with datasets.load({self.dataset_id!r}, tasks=[..., {task_id}]).")
        return self.tasks[task_id]

    def sample_batch(self, task_ids: Sequence[int], batch_size: int, rng: np.random.Generator):
        """`batch_size` transitions from each task, uniformly: arrays of shape (tasks, batch, ...)."""
        per_task = [self.task(t).take(rng.integers(len(self.task(t)), size=batch_size)) for t in task_ids]
        return {key: np.stack([b[key] for b in per_task]) for key in per_task[0]}

    def sample_context(self, task_id: int, size: int, rng: np.random.Generator, window: bool = False):
        """`size` transitions of one task: uniform draws, or one contiguous window of steps."""
        task = self.task(task_id)
        if window:
            start = int(rng.integers(len(task) - size + 1))
            return task.take(np.arange(start, start + size))
        return task.take(rng.integers(len(task), size=size))

    def episode_returns(self) -> list[tuple[int, int, float]]:
        """(task, behaviour label, return) of every episode in the dataset."""
        result = []
        for task_id in self.task_ids:
            task = self.tasks[task_id]
            ends = np.flatnonzero(task.terminals | task.timeouts) + 1
            for start, end in zip(np.r_[0, ends[:-1]], ends):
                result.append((task_id, int(task.behaviours[start]), float(task.rewards[start:end].sum())))
        return result

    def normalized_score(self, task_id: int, episode_return: float) -> float:
        """0 = the random policy, 100 = the family's expert behaviour, on this task."""
        low = self.reference_returns["random"][task_id]
        high = self.reference_returns["expert"][task_id]
        return 100.0 * (episode_return - low) / (high - low)


def read_metadata(dataset_id: str) -> dict:
    """The dataset's metadata.json, or a DatasetError that says how to get the dataset."""
    path = metadata_file(dataset_id)
    if not path.exists():
        raise DatasetError(
            f"Dataset {dataset_id} is not in the local Minari root ({datasets_root()}). Build it "
            f"with `bitr datasets build {dataset_id}` or download it with "
            f"`bitr datasets download {dataset_id}`."
        )
    try:
        with open(path) as f:
            metadata = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"Dataset {dataset_id}: its metadata {path} is unreadable ({err}). "
                           f"{_fixes(dataset_id)}") from err
    version = metadata.get("bitr_format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(
            f"Dataset {dataset_id} has bitr format version {version}, this bitr-bench reads "
            f"version {FORMAT_VERSION}. {_fixes(dataset_id)}"
        )
    return metadata


def load(dataset_id: str, tasks: Optional[Sequence[int]] = None) -> OfflineData:
    """Read a local BITR dataset into per-task arrays (see the module docstring): every task, or
    only `tasks` (task ids in the split), reading only their episodes."""
    import minari

    from bitr_envs.registry import entry

    metadata = read_metadata(dataset_id)
    n_tasks = entry(metadata["bitr_env_id"]).num_tasks(metadata["bitr_split"])
    if tasks is not None:
        wanted = sorted({int(t) for t in tasks})
        outside = [t for t in wanted if not 0 <= t < n_tasks]
        if outside or not wanted:
            raise ValueError(f"Dataset {dataset_id} holds tasks 0-{n_tasks - 1} of the {metadata['bitr_split']!r} "
                             f"split; tasks={list(tasks)} asks for {outside or 'none'}.")
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as err:  # Minari's version checks and file errors, all worded its own way
        raise DatasetError(f"Minari cannot open dataset {dataset_id}: {err}. {_fixes(dataset_id)}") from err

    per_task: list[list[dict]] = [[] for _ in range(n_tasks)]
    if tasks is None:
        indices, expected = range(dataset.total_episodes), None  # every episode, in file order
    else:
        index = metadata["bitr_task_episodes"]
        indices = [i for t in wanted for start, stop in index[t] for i in range(start, stop)]
        expected = {i: t for t in wanted for start, stop in index[t] for i in range(start, stop)}
    n_read = n_steps = 0
    try:
        for episode in dataset.storage.get_episodes(indices):
            task, arrays = _episode_arrays(episode)
            indexed = task if expected is None else expected.get(episode["id"])
            if indexed != task or not 0 <= task < n_tasks:
                raise DatasetError(f"Dataset {dataset_id}: episode {episode['id']} holds task {task}; its split has "
                                   f"tasks 0-{n_tasks - 1} and its task index says {indexed}. {_fixes(dataset_id)}")
            per_task[task].append(arrays)
            n_read += 1
            n_steps += len(arrays["rewards"])
    except (OSError, KeyError, IndexError, RuntimeError, ValueError, MemoryError) as err:  # h5py's read errors
        per_task.clear()  # what was read goes first: it may be what filled the memory
        failed = indices[n_read] if n_read < len(indices) else None  # None: after the last episode
        raise _read_error(dataset, dataset_id, failed, err) from err
    if tasks is None and n_steps != metadata["total_steps"]:
        raise DatasetError(
            f"Dataset {dataset_id} holds {n_steps} steps, its metadata says {metadata['total_steps']}. "
            f"{_fixes(dataset_id)}"
        )
    loaded: list[Optional[TaskData]] = []
    for task, episodes in enumerate(per_task):
        if tasks is not None and task not in wanted:
            loaded.append(None)
            continue
        if not episodes:
            raise DatasetError(f"Dataset {dataset_id} has no episode of task {task}. {_fixes(dataset_id)}")
        try:
            loaded.append(TaskData(**{k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}))
        except MemoryError as err:
            raise _memory_error(dataset_id, err) from err
        per_task[task] = []  # the episodes' arrays go as soon as their task is one array
    return OfflineData(
        dataset_id=dataset_id,
        env_id=metadata["bitr_env_id"],
        split=metadata["bitr_split"],
        pool=metadata["bitr_pool"],
        behaviour_names=list(metadata["bitr_behaviours"]),
        reference_returns=metadata["bitr_reference_returns"],
        tasks=loaded,
    )


def _episode_arrays(episode: dict) -> tuple[int, dict[str, np.ndarray]]:
    """One episode as read by Minari: its task, and its transitions as `TaskData`'s fields."""
    obs = episode["observations"]
    return int(episode["infos"]["task_id"][0]), {
        "observations": obs[:-1],
        "actions": episode["actions"],
        "rewards": episode["rewards"],
        "next_observations": obs[1:],
        "terminals": episode["terminations"],
        "timeouts": episode["truncations"],
        "behaviours": episode["infos"]["behaviour"][1:],
        "pursued": episode["infos"].get("pursued_task", episode["infos"]["task_id"])[1:],
    }


def _read_error(dataset, dataset_id: str, episode_id: Optional[int], err: BaseException) -> Exception:
    """What a failed read of episode `episode_id` means: too little memory, or a damaged file.

    h5py and Minari word a failed allocation their own way: h5py's "memory allocation failed",
    or Minari's "Infos are in an unsupported format" when h5py cannot allocate an info's array.
    So unless the error says memory, the episode is read again on its own (with what was loaded
    let go): if it reads, the file is intact there and memory is what ran out."""
    if _out_of_memory(err):
        return _memory_error(dataset_id, err)
    if episode_id is not None:
        again = _read_alone(dataset, episode_id)
        if again is None or _out_of_memory(again):
            return _memory_error(dataset_id, err)
    where = "" if episode_id is None else f"; episode {episode_id} fails on its own too"
    return DatasetError(f"Dataset {dataset_id} could not be read ({err!r}{where}): a damaged file. "
                        f"{_fixes(dataset_id)}")


def _read_alone(dataset, episode_id: int) -> Optional[Exception]:
    """The error of reading one episode by itself, or None if it reads."""
    try:
        _episode_arrays(next(iter(dataset.storage.get_episodes([episode_id]))))
    except Exception as err:  # h5py's and Minari's read errors, each worded its own way
        return err
    return None


def _out_of_memory(err: Optional[BaseException]) -> bool:
    """Whether `err`, or an error it was raised from, is the process running out of memory in
    words (`MemoryError`, or h5py's "memory allocation failed")."""
    while err is not None:
        if isinstance(err, MemoryError) or "memory allocation failed" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def _memory_error(dataset_id: str, err: BaseException) -> MemoryError:
    return MemoryError(f"Out of memory while loading {dataset_id} ({err!r}); nothing says the dataset is "
                       "damaged. Load fewer tasks at a time (`datasets.load(id, tasks=[...])` reads only "
                       "theirs) or give the process more memory.")


def verify(dataset_id: str, full_read: bool = True, sealed: bool = False) -> list[str]:
    """Every problem found with a local dataset (empty when it is intact): its files against the
    checksums recorded at build time, against the benchmark's pinned checksums, and (with
    `full_read`) a read of every episode. A sealed evaluation's dataset (built on a key's secret
    tasks) has no pin: it is accepted with `sealed` only (whose caller checks its recipe), and
    refused without."""
    try:
        metadata = read_metadata(dataset_id)
    except DatasetError as err:
        return [str(err)]
    path = data_file(dataset_id)
    if not path.exists():
        return [f"{path} is missing. {_fixes(dataset_id)}"]
    problems = []
    data_sha256 = file_sha256(path)
    if data_sha256 != metadata.get("bitr_data_sha256"):
        problems.append(f"{path} does not match the checksum recorded when it was built. {_fixes(dataset_id)}")
    content = content_sha256(metadata)
    if content != metadata.get("bitr_content_sha256"):
        problems.append(f"{metadata_file(dataset_id)} was changed after the dataset was built (its reference "
                        f"returns or recipe fields no longer match its checksum). {_fixes(dataset_id)}")
    if bool(metadata.get("bitr_sealed")) != sealed:
        problems.append(f"{dataset_id} was built on a sealed evaluation's secret tasks: it is not the public dataset. "
                        f"{_fixes(dataset_id)}" if not sealed else
                        f"{dataset_id} in the sealed root is a public dataset, not one built on the key's tasks.")
    expected = None if sealed else pinned(dataset_id)
    matches_pins = expected is None or (expected["data_sha256"], expected["content_sha256"]) == (data_sha256, content)
    if not matches_pins and not problems:
        problems.append(
            f"{dataset_id} is intact but is not the benchmark's dataset: its checksums (data {data_sha256[:12]}, "
            f"content {content[:12]}) differ from the pinned ones (data {expected['data_sha256'][:12]}, content "
            f"{expected['content_sha256'][:12]}), so it came from another recipe, code version or mirror. "
            f"{_fixes(dataset_id)}"
        )
    if full_read and not problems:
        try:
            load(dataset_id)
        except DatasetError as err:
            problems.append(str(err))
    return problems
