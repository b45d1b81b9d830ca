"""Building a dataset: which episodes it holds, cut into shards, run on one core, on local
processes or on a Ray cluster, resumably, and written as one Minari file (`build`, which
`bitr_envs.datasets.build` is).

A dataset's episodes (`dataset_jobs`, task-major) and its two reference runs (`reference_jobs`)
are cut into shards of contiguous episodes, about `SHARD_STEPS` planned steps each. A shard is
independent of every other (each episode has its own seeds), so shards run in any order, on
any number of workers, and give the same arrays. Each finished shard is written atomically to

    <Minari root>/.bitr-shards/<dataset id>/<recipe fingerprint>/shard-00012.npz

(a hidden folder: Minari does not list it), so memory is bounded by a shard and an interrupted
build resumes from the shards it finished. The dataset is written from them in order, one
shard in memory at a time, in one pass over one hdf5 file (`collect.write_dataset`): the bytes
are those of the same episodes written from one list, whatever the number of workers. The
shard folder goes when the dataset is installed. `jobs=1` runs the shards one after the other
in this process.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import multiprocessing
import shutil
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from bitr_envs.datasets.collect import Episode, Job, Progress, collect, package_version, write_dataset
from bitr_envs.datasets.recipes import Recipe, recipe
from bitr_envs.datasets.storage import build_lock, dataset_path, datasets_root, exists
from bitr_envs.files import atomic_write
from bitr_envs.ray_cluster import start_ray

# planned steps per shard (episodes x horizon): what a worker holds, a few MB; small enough to balance 2 workers
SHARD_STEPS = 20_000
SHARDS_DIR = ".bitr-shards"
DATA = "data"
REFERENCE = "reference:"
EXECUTORS = ("local", "ray")


# ----- which episodes a dataset holds ---------------------------------------------------------
def episode_seeds(root_seed: int, name: str, count: int, task_draw: Optional[int] = None) -> list[int]:
    """`count` independent 32-bit seeds for the episodes of `name` (a dataset or a reference run);
    a sealed build's also depend on its secret draw, so that even a goal-blind behaviour's
    episodes are not the public dataset's."""
    entropy = [root_seed, zlib.crc32(name.encode())] + ([] if task_draw is None else [task_draw])
    sequence = np.random.SeedSequence(entropy)
    return [int(s.generate_state(1)[0]) for s in sequence.spawn(count)]


def dataset_jobs(r: Recipe) -> list[Job]:
    """The episodes of a dataset: for each task, each behaviour's share, in a fixed order."""
    counts = r.episode_counts()
    names = [(t, b) for t in range(r.num_tasks) for b, c in counts.items() for _ in range(c)]
    seeds = episode_seeds(r.card.seed, r.dataset_id, len(names), r.task_draw)
    return [Job(task=t, behaviour=b, seed=s,
                pursued=pursued_task(t, r.num_tasks, s) if r.card.behaviours[b].pursues_another_task else t)
            for (t, b), s in zip(names, seeds)]


def pursued_task(task: int, n_tasks: int, seed: int) -> int:
    """The task a behaviour that pursues another task is given in an episode of `task`: uniform
    over the split's other tasks, from the episode's seed (its own stream, apart from the noise's)."""
    if n_tasks < 2:
        raise ValueError("a behaviour that pursues another task needs a split of two tasks or more")
    other = int(np.random.default_rng([seed, PURSUIT_STREAM]).integers(n_tasks - 1))
    return other + (other >= task)


PURSUIT_STREAM = 1  # the pursued task's random stream of an episode seed


def reference_jobs(r: Recipe) -> dict[str, list[Job]]:
    """The episodes of the two reference runs (random, then the family's expert), task-major.

    They give the 0 and 100 of the normalised score, measured on this dataset's split; both runs
    depend only on the card, the env and the split, not on the pool or profile.
    """
    n = r.card.reference_episodes
    runs = {}
    for name in ("random", r.card.expert):
        seeds = episode_seeds(r.card.seed, f"reference/{r.env_id}/{r.split}/{name}", r.num_tasks * n, r.task_draw)
        runs[name] = [Job(task=t, behaviour=name, seed=seeds[t * n + k], pursued=t)
                      for t in range(r.num_tasks) for k in range(n)]
    return runs


def reference_means(r: Recipe, returns: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Per-task mean returns of each reference run, from its episodes' returns in job order."""
    result = {name: np.asarray(returns[name]).reshape(r.num_tasks, -1).mean(axis=1).tolist() for name in returns}
    return {"random": result["random"], "expert": result[r.card.expert]}


@dataclass(frozen=True)
class Shard:
    """A block of contiguous episodes of one run: the dataset's (`run="data"`) or a reference run's."""

    index: int  # its place in the plan and its file name
    run: str  # DATA, or "reference:<behaviour>"
    jobs: tuple[Job, ...]

    def key(self, r: Recipe) -> str:
        """What the shard's arrays depend on: a finished shard is reused only with the same key."""
        jobs = [(j.task, j.behaviour, j.seed, j.pursued) for j in self.jobs]
        payload = [r.fingerprint(), package_version(), self.run, jobs]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    @property
    def file_name(self) -> str:
        return f"shard-{self.index:05d}.npz"


def plan(r: Recipe) -> list[Shard]:
    """The shards of a dataset: the reference runs', then the data's, each cut into contiguous
    blocks of `SHARD_STEPS // horizon` episodes, the data's last two blocks' worth in quarters
    (the work left once the big shards are handed out is small, so the workers finish together
    instead of one waiting for the other's last big shard). Depends on the recipe only."""
    per_shard = max(1, SHARD_STEPS // r.horizon)
    runs = {f"{REFERENCE}{name}": jobs for name, jobs in reference_jobs(r).items()}
    runs[DATA] = dataset_jobs(r)
    shards = []
    for run, jobs in runs.items():
        tail = max(0, len(jobs) - 2 * per_shard) if run == DATA else len(jobs)
        starts = [*range(0, tail, per_shard), *range(tail, len(jobs), max(1, per_shard // 4))]
        for start, stop in zip(starts, [*starts[1:], len(jobs)]):
            shards.append(Shard(len(shards), run, tuple(jobs[start:stop])))
    return shards


def shard_folder(r: Recipe) -> Path:
    return datasets_root() / SHARDS_DIR / r.dataset_id / r.fingerprint()


# ----- running one shard (in any process) ----------------------------------------------------
_BEHAVIOURS: dict[str, dict] = {}  # recipe fingerprint -> its behaviours, loaded once per worker


def _behaviours(r: Recipe) -> dict:
    from bitr_envs.datasets.behaviours import make_behaviours
    from bitr_envs.datasets.recipes import recipes_dir

    key = r.fingerprint()
    if key not in _BEHAVIOURS:
        card = r.card
        if not card.path.exists():  # a Ray node where the package lives elsewhere: its own copy
            card = dataclasses.replace(card, path=recipes_dir() / card.path.name)
        _BEHAVIOURS.clear()
        _BEHAVIOURS[key] = make_behaviours(card)
    return _BEHAVIOURS[key]


def run_shard(r: Recipe, shard: Shard, num_envs: int = 16, progress: Progress = None) -> bytes:
    """Collect a shard's episodes; returns its file's bytes (npz: episodes concatenated, with
    their lengths, tasks, behaviour labels and seeds). Runs in a worker: needs only its arguments."""
    behaviours = _behaviours(r)
    if shard.run != DATA:
        name = shard.run.removeprefix(REFERENCE)
        behaviours = {name: behaviours[name]}
    episodes = collect(r.env_id, r.split, list(shard.jobs), behaviours, num_envs, progress, r.task_draw)
    arrays = {
        "key": np.array(shard.key(r)),
        "lengths": np.array([len(e.rewards) for e in episodes], dtype=np.int64),
        "tasks": np.array([e.task for e in episodes], dtype=np.int64),
        "behaviours": np.array([e.behaviour for e in episodes], dtype=np.int64),
        "seeds": np.array([e.seed for e in episodes], dtype=np.int64),
        "pursued": np.array([e.pursued for e in episodes], dtype=np.int64),
        "returns": np.array([e.total_return for e in episodes], dtype=np.float64),
    }
    if shard.run == DATA:
        for field in ("observations", "actions", "rewards", "terminations", "truncations"):
            arrays[field] = np.concatenate([getattr(e, field) for e in episodes])
            for e in episodes:  # each array once in memory: the episode's copy goes
                setattr(e, field, None)
    del episodes
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _finished(path: Path, key: str) -> Optional[int]:
    """The steps of the shard file at `path` if it is a finished shard with this key, else None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) == key:
                return int(f["lengths"].sum())
    except (OSError, ValueError, KeyError, EOFError):  # unreadable: run the shard again
        pass
    return None


def episodes_of(folder: Path, shards: Iterable[Shard],
                before_each: Optional[Callable[[Shard], None]] = None) -> Iterator[Episode]:
    """The episodes of data shards, in order, read one shard at a time; `before_each(shard)` is
    called before a shard is read (the overlapped writer waits there for it to be collected)."""
    for shard in shards:
        if before_each is not None:
            before_each(shard)
        with np.load(folder / shard.file_name, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        ends = np.cumsum(arrays["lengths"])
        starts = ends - arrays["lengths"]
        for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
            yield Episode(
                task=int(arrays["tasks"][i]),
                behaviour=int(arrays["behaviours"][i]),
                seed=int(arrays["seeds"][i]),
                pursued=int(arrays["pursued"][i]),
                observations=arrays["observations"][start + i : end + i + 1],  # T + 1 per episode
                actions=arrays["actions"][start:end],
                rewards=arrays["rewards"][start:end],
                terminations=arrays["terminations"][start:end],
                truncations=arrays["truncations"][start:end],
            )
        del arrays


def _returns_of(folder: Path, shards: Iterable[Shard]) -> np.ndarray:
    parts = []
    for shard in shards:
        with np.load(folder / shard.file_name, allow_pickle=False) as f:
            parts.append(f["returns"])
    return np.concatenate(parts)


# ----- executors -------------------------------------------------------------------------------
def _started() -> None:
    """Nothing: submitted once per worker so that the pool spawns them at once."""


class ShardExecutor:
    """Runs `run_shard` calls and hands back their results as they finish.

    `local` with `jobs=1` runs them in this process, one after the other; `local` with more
    runs them on that many fresh (spawned) processes; `ray` runs them as Ray tasks, on the
    cluster at $RAY_ADDRESS if set, else on a local Ray instance with `jobs` CPUs. Workers
    return a shard's bytes and this process writes it, so Ray workers need no shared disk.
    """

    def __init__(self, jobs: int = 1, executor: str = "local"):
        if executor not in EXECUTORS:
            raise ValueError(f"Unknown executor {executor!r}: use 'local' or 'ray'.")
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {jobs}.")
        self.jobs, self.executor = jobs, executor
        self._pool: Optional[ProcessPoolExecutor] = None
        self._ray = None

    def __enter__(self) -> ShardExecutor:
        if self.executor == "ray":
            self._ray = start_ray(self.jobs)
        elif self.jobs > 1:
            self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"))
            for _ in range(self.jobs):  # start the workers (and their imports) now, while this process plans
                self._pool.submit(_started)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def in_process(self) -> bool:
        return self._pool is None and self._ray is None

    def run(self, r: Recipe, shards: list[Shard], num_envs: int,
            progress: Optional[Callable[[Shard, int], None]]) -> Iterator[tuple[Shard, bytes]]:
        """(shard, file bytes) for every shard, in the order they finish; in this process,
        `progress(shard, steps)` is told of the steps as they are collected."""
        if self._ray is not None:
            yield from self._run_ray(r, shards, num_envs)
        elif self._pool is not None:
            yield from self._run_pool(r, shards, num_envs)
        else:
            for shard in shards:
                told = None if progress is None else functools.partial(progress, shard)
                yield shard, run_shard(r, shard, num_envs, told)

    def _run_pool(self, r, shards, num_envs):
        # At most 2 shards per worker in flight: finished results wait in this process's memory.
        todo, pending = list(shards), {}
        try:
            while todo or pending:
                while todo and len(pending) < 2 * self.jobs:
                    shard = todo.pop(0)
                    pending[self._pool.submit(run_shard, r, shard, num_envs)] = shard
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()

    def _run_ray(self, r, shards, num_envs):
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=2)(run_shard)
        recipe_ref = ray.put(r)
        todo, pending = list(shards), {}
        limit = max(2 * self.jobs, int(2 * ray.cluster_resources().get("CPU", self.jobs)))
        try:
            while todo or pending:
                while todo and len(pending) < limit:
                    shard = todo.pop(0)
                    pending[remote.remote(recipe_ref, shard, num_envs)] = shard
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard = pending.pop(ready[0])
                yield shard, ray.get(ready[0])
        finally:
            for ref in pending:
                ray.cancel(ref)


# ----- a whole build -------------------------------------------------------------------------
REFERENCE_RUNS, WRITING = "reference runs", "writing"  # with DATA, the parts a build reports on


class BuildProgress:
    """What a build reports as it goes; this one shows nothing (`bitr datasets build` draws a bar
    per part). Three parts, each counted against its own total: REFERENCE_RUNS, the steps of the
    two reference runs (their returns set the normalised score; they are not in the dataset);
    DATA, the steps of the dataset's episodes; WRITING, the episodes written to its Minari file.
    The methods may be called from the writer's thread while Minari's root is its scratch
    folder (`_ShardWriter`): they must not look up datasets by id."""

    def planned(self, part: str, total: int) -> None:
        """`part`'s total. For steps, the plan's bound (episodes x horizon) first, then lowered as
        the shards whose episodes ended early are done, so that it ends at the steps collected."""

    def advanced(self, part: str, amount: int) -> None:
        """`amount` more of `part` done: collected, found on disk from an earlier build, or written."""

    def stage(self, message: str) -> None:
        """What the build does that the parts do not count (checksumming the written file)."""


def build(dataset_id: str, num_envs: int = 16, progress: Optional[BuildProgress] = None, jobs: int = 1,
          executor: str = "local", runner: Optional[ShardExecutor] = None,
          on_shard: Optional[Callable[[Shard, bool], None]] = None,
          on_wait: Optional[Callable[[str], None]] = None, force: bool = True,
          task_draw: Optional[int] = None) -> Path:
    """Collect and write one dataset from its recipe; returns the dataset's folder.

    Collection runs in shards: `jobs` local processes, or Ray tasks with `executor="ray"`;
    `runner` (an open `ShardExecutor`) is shared between builds, else one is opened with `jobs`
    and `executor`. An interrupted build resumes from the shards it finished; the dataset's
    bytes are the same for every `jobs`, `executor` and `num_envs`. `progress` is told what is
    collected and written; `on_shard(shard, reused)` of every shard as it is found on disk or
    collected. One build of an id runs at a time: another waits for it (`on_wait` is told) and
    then returns the dataset it made (the same bytes). Without `force`, a dataset that exists
    once the lock is held is returned as it is. `task_draw` builds the dataset on a sealed
    evaluation's secret tasks (into a Minari root of its own: the id stays the public one's)."""
    with build_lock(dataset_id, on_wait) as waited:
        if exists(dataset_id) and (waited or not force):
            return dataset_path(dataset_id)
        r = dataclasses.replace(recipe(dataset_id), task_draw=task_draw)
        return _build(r, num_envs, progress or BuildProgress(), jobs, executor, runner, on_shard)


def _part(shard: Shard) -> str:
    return DATA if shard.run == DATA else REFERENCE_RUNS


def _build(r: Recipe, num_envs: int, progress: BuildProgress, jobs: int, executor: str,
           runner: Optional[ShardExecutor], on_shard: Optional[Callable[[Shard, bool], None]]) -> Path:
    shards = plan(r)
    folder = shard_folder(r)
    if folder.parent.exists():  # shards of another recipe of this id: useless now
        for other in folder.parent.iterdir():
            if other != folder:
                shutil.rmtree(other, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)

    planned = {REFERENCE_RUNS: 0, DATA: 0}
    for shard in shards:
        planned[_part(shard)] += len(shard.jobs) * r.horizon
    for part, total in planned.items():
        progress.planned(part, total)
    progress.planned(WRITING, sum(len(s.jobs) for s in shards if s.run == DATA))

    def collected(shard: Shard, steps: int) -> None:
        progress.advanced(_part(shard), steps)

    def done(shard: Shard, steps: int) -> None:
        """A shard's steps are known: lower its part's total by the steps its episodes did not run."""
        short = len(shard.jobs) * r.horizon - steps
        if short:
            planned[_part(shard)] -= short
            progress.planned(_part(shard), planned[_part(shard)])

    todo = []
    for shard in shards:
        steps = _finished(folder / shard.file_name, shard.key(r))
        if steps is None:
            todo.append(shard)
            continue
        collected(shard, steps)
        done(shard, steps)
        if on_shard is not None:
            on_shard(shard, True)

    writer = _ShardWriter(r, folder, shards, {s.index for s in shards} - {s.index for s in todo}, progress)
    try:
        if todo:
            with (ShardExecutor(jobs, executor) if runner is None else _borrowed(runner)) as running:
                for shard, data in running.run(r, todo, num_envs, collected):
                    atomic_write(folder / shard.file_name, lambda f, data=data: f.write(data))
                    with np.load(io.BytesIO(data)) as f:
                        steps = int(f["lengths"].sum())
                    if not running.in_process:  # in process: told step by step
                        collected(shard, steps)
                    done(shard, steps)
                    if on_shard is not None:
                        on_shard(shard, False)
                    del data
                    # with workers collecting, this process has a core's time to spare: write as they go
                    writer.on_disk(shard, start=not running.in_process)
        path = writer.finish()
    except BaseException:
        writer.abort()
        raise
    _remove_shards(r)
    return path


class _ShardWriter:
    """Writes the dataset from its data shards, in order, on a thread of this process: started
    once the reference runs are on disk (their means go in the dataset's metadata), it takes
    each data shard as soon as it and those before it are there, so with workers collecting the
    writing overlaps the collection instead of following it. The bytes are the same either way:
    one pass over one file, the same episodes in the same order. While it writes, Minari's root
    (an environment variable, so the whole process's) is the scratch folder: the builder's loop
    uses only paths it computed before."""

    def __init__(self, r: Recipe, folder: Path, shards: list[Shard], on_disk: set[int], progress: BuildProgress):
        self.r, self.folder, self.shards, self.progress = r, folder, shards, progress
        self._on_disk, self._aborted = set(on_disk), False
        self._changed = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._outcome: list = []  # the dataset's path, or the exception that stopped the writing

    def on_disk(self, shard: Shard, start: bool) -> None:
        """Hand the writer a finished shard; raises what stopped the writer (a full disk), if
        anything did, so the build stops now rather than after collecting every shard."""
        with self._changed:
            self._on_disk.add(shard.index)
            self._changed.notify_all()
        self._raise_if_failed()
        if start:
            self._start_when_ready()

    def finish(self) -> Path:
        self._start_when_ready()
        self._thread.join()
        self._raise_if_failed()
        return self._outcome[0]

    def _raise_if_failed(self) -> None:
        if self._outcome and isinstance(self._outcome[0], BaseException):
            raise self._outcome[0]

    def abort(self) -> None:
        with self._changed:
            self._aborted = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _start_when_ready(self) -> None:
        references = [s for s in self.shards if s.run != DATA]
        if self._thread is not None or any(s.index not in self._on_disk for s in references):
            return
        runs = list(dict.fromkeys(s.run for s in references))
        returns = {run.removeprefix(REFERENCE): _returns_of(self.folder, [s for s in references if s.run == run])
                   for run in runs}
        means = reference_means(self.r, returns)
        self._thread = threading.Thread(target=self._write, args=(means,), name="bitr-dataset-writer", daemon=True)
        self._thread.start()

    def _wait_for(self, shard: Shard) -> None:
        with self._changed:
            self._changed.wait_for(lambda: shard.index in self._on_disk or self._aborted)
            if self._aborted:
                raise _Aborted()

    def _episodes(self) -> Iterator[Episode]:
        """The data shards' episodes, each counted as written once Minari asks for the next."""
        for episode in episodes_of(self.folder, [s for s in self.shards if s.run == DATA], before_each=self._wait_for):
            yield episode
            self.progress.advanced(WRITING, 1)

    def _write(self, means: dict) -> None:
        try:
            behaviours = dict.fromkeys(self.r.behaviour_names)
            self._outcome.append(write_dataset(self.r, self._episodes(), means, behaviours, self.progress.stage))
        except BaseException as err:  # handed to the builder's thread by finish()
            self._outcome.append(err)


class _Aborted(Exception):
    """The build stopped (a worker failed, Ctrl-C): the writer gives up its scratch copy."""


@contextmanager
def _borrowed(runner: ShardExecutor) -> Iterator[ShardExecutor]:
    yield runner  # opened and closed by its owner


def _remove_shards(r: Recipe) -> None:
    """Remove the dataset's shard folder, and its parents up to the Minari root once empty."""
    top = datasets_root() / SHARDS_DIR
    folder = top / r.dataset_id
    shutil.rmtree(folder, ignore_errors=True)
    parent = folder.parent
    while parent != top.parent and parent.is_relative_to(top):
        try:
            parent.rmdir()
        except OSError:  # not empty: other datasets' shards
            break
        parent = parent.parent
