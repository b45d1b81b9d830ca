"""Sharded dataset builds: any number of workers, local or Ray, killed and resumed, give one
dataset with one pair of checksums; per-task loading reads only that task's episodes."""


import numpy as np
import pytest

from bitr_envs import datasets
from bitr_envs.datasets import shards
from bitr_envs.datasets.recipes import recipe
from bitr_envs.datasets.storage import exists, file_hashes
from bitr_eval.cli import main as bitr_main

POINT = "bitr/point-robot-sparse/train-iid-tiny-v0"  # 30 tasks x 8 episodes x 20 steps
CHEETAH = "bitr/cheetah-vel/test-iid-tiny-v0"  # 10 tasks x 4 episodes x 200 steps (MuJoCo)


@pytest.fixture(autouse=True)
def small_shards(monkeypatch):
    """Shards of a few episodes, so that tiny datasets have many (the plan is made in the driver)."""
    monkeypatch.setattr(shards, "SHARD_STEPS", 400)


def build_in(root, monkeypatch, dataset_id, **kwargs):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    datasets.build(dataset_id, **kwargs)
    return file_hashes(dataset_id)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The one-process build (`--jobs 1`) of both datasets: the checksums to match."""
    root = tmp_path_factory.mktemp("one-process")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shards, "SHARD_STEPS", 400)
        return root, {d: build_in(root, mp, d) for d in (POINT, CHEETAH)}


def test_the_plan_cuts_every_run_into_contiguous_shards():
    r = recipe(CHEETAH)
    plan = shards.plan(r)
    assert [s.index for s in plan] == list(range(len(plan)))
    data = [job for s in plan if s.run == shards.DATA for job in s.jobs]
    assert data == shards.dataset_jobs(r)  # task-major, every episode once, in order
    assert {s.run for s in plan} == {shards.DATA, "reference:random", "reference:expert"}
    # 400 planned steps / 200-step episodes = 2 a shard; the data's last 2 shards' worth in
    # quarters (at least one episode each), so that the workers finish together
    assert all(len(s.jobs) == 2 for s in plan if s.run != shards.DATA)
    assert [len(s.jobs) for s in plan if s.run == shards.DATA] == [2] * (len(data) // 2 - 2) + [1] * 4


def test_two_local_processes_give_the_one_process_checksums(one_process, tmp_path, monkeypatch):
    _, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert bitr_main(["datasets", "build", CHEETAH, "--jobs", "2"]) == 0
    assert file_hashes(CHEETAH) == expected[CHEETAH]
    assert not (tmp_path / shards.SHARDS_DIR).exists()  # the shards go once the dataset is in place


def test_ray_tasks_give_the_one_process_checksums(one_process, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    _, expected = one_process
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert build_in(tmp_path, monkeypatch, POINT, jobs=2, executor="ray") == expected[POINT]
    finally:
        ray.shutdown()


def test_a_killed_build_resumes_from_its_finished_shards(one_process, tmp_path, monkeypatch):
    _, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    real, calls = shards.run_shard, []

    def dies_after_five(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt  # the machine goes away mid-build
        calls.append(args[1].index)
        return real(*args, **kwargs)

    monkeypatch.setattr(shards, "run_shard", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        datasets.build(POINT)
    assert not exists(POINT)  # nothing half-built is listed
    folder = shards.shard_folder(recipe(POINT))
    assert sorted(p.name for p in folder.glob("shard-*.npz")) == [f"shard-{i:05d}.npz" for i in calls]
    stale = folder.parent / ("0" * 64) / "shard-00000.npz"  # a shard of another recipe of this id
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    (folder / "shard-00001.npz").write_bytes(b"cut short")  # unreadable: collected again

    monkeypatch.setattr(shards, "run_shard", real)
    reused = []
    shards.build(POINT, on_shard=lambda shard, was_reused: was_reused and reused.append(shard.index))
    assert reused == [i for i in calls if i != 1]
    assert file_hashes(POINT) == expected[POINT]
    assert not stale.parent.exists() and not (tmp_path / shards.SHARDS_DIR).exists()


def test_loading_one_task_reads_only_its_episodes(one_process, monkeypatch):
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    root, _ = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    everything = datasets.load(POINT)
    read, real = [], HDF5Storage.get_episodes

    def spy(self, indices):
        for episode in real(self, indices):
            read.append((episode["id"], int(episode["infos"]["task_id"][0])))
            yield episode

    monkeypatch.setattr(HDF5Storage, "get_episodes", spy)
    data = datasets.load(POINT, tasks=[4])
    per_task = recipe(POINT).episodes_per_task
    assert read == [(4 * per_task + k, 4) for k in range(per_task)]  # those episodes, no others
    assert data.task_ids == [4] and data.tasks[3] is None
    for field in ("observations", "actions", "rewards", "next_observations", "behaviours", "timeouts"):
        np.testing.assert_array_equal(getattr(data.tasks[4], field), getattr(everything.tasks[4], field))
    assert data.sample_context(4, 8, np.random.default_rng(0))["rewards"].shape == (8,)
    with pytest.raises(ValueError, match="Task 3 .* was not loaded"):
        data.sample_context(3, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"holds tasks 0-29 .* asks for \[99\]"):
        datasets.load(POINT, tasks=[99])


BUILD = """
import sys
from bitr_envs import datasets
from bitr_envs.datasets import shards
shards.SHARD_STEPS = 400
datasets.build(sys.argv[1])
"""


def test_a_sigkilled_build_resumes(one_process, tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    _, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    folder = shards.shard_folder(recipe(CHEETAH))
    build = subprocess.Popen([sys.executable, "-c", BUILD, CHEETAH], env=os.environ.copy())
    deadline = time.monotonic() + 120
    while len(list(folder.glob("shard-*.npz"))) < 3 and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    build.send_signal(signal.SIGKILL)
    build.wait()
    assert build.returncode == -signal.SIGKILL, "the build ended before it could be killed"
    assert not exists(CHEETAH)
    finished = len(list(folder.glob("shard-*.npz")))
    reused = []
    shards.build(CHEETAH, on_shard=lambda shard, was_reused: was_reused and reused.append(shard.index))
    assert len(reused) == finished >= 3
    assert file_hashes(CHEETAH) == expected[CHEETAH]


SECOND_BUILD = {  # the CLI keeps a dataset that exists by then; the library call forces a rebuild
    "cli": ["-m", "bitr_eval.cli", "datasets", "build"],
    "forced": ["-c", "import sys; from bitr_envs import datasets; "
                     "path = datasets.build(sys.argv[1], on_wait=lambda m: print(m, file=sys.stderr, flush=True)); "
                     "print(f'{sys.argv[1]}: built at {path}')"],
}


@pytest.mark.parametrize("how", list(SECOND_BUILD))
def test_a_second_build_of_one_id_waits_for_the_first_and_gets_its_dataset(one_process, tmp_path, monkeypatch, how):
    """Two builds of one id never interleave: the second waits, names the first's pid, and
    returns the dataset the first made instead of writing it again (even when told to force)."""
    import os
    import select
    import subprocess
    import sys

    from bitr_envs.datasets.storage import build_lock, data_file

    _, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with build_lock(CHEETAH) as waited:  # this test is the first build
        assert not waited
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a batch job's log
        second = subprocess.Popen([sys.executable, *SECOND_BUILD[how], CHEETAH],
                                  env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        said = b""
        while b"waiting" not in said:  # raw reads: the progress bar's frames end in \r, not \n
            assert select.select([second.stderr], [], [], 120)[0], f"the second build said only {said!r}"
            said += os.read(second.stderr.fileno(), 4096)
        line = said.decode()
        assert f"another build of {CHEETAH} is running (pid {os.getpid()} " in line
        assert second.poll() is None and not exists(CHEETAH)
        shards._build(recipe(CHEETAH), 16, shards.BuildProgress(), 1, "local", None, None)
        built = data_file(CHEETAH).stat().st_mtime_ns
    assert second.wait(120) == 0
    assert f"{CHEETAH}: built at" in second.stdout.read().decode()
    assert data_file(CHEETAH).stat().st_mtime_ns == built  # not written again
    assert file_hashes(CHEETAH) == expected[CHEETAH]


@pytest.mark.parametrize("failure", ["no flock", "lock file not writable"])
def test_a_build_where_no_lock_can_be_taken_warns_and_builds(one_process, tmp_path, monkeypatch, failure):
    import errno
    import fcntl

    from bitr_envs.datasets.storage import LOCKS_DIR

    _, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    if failure == "no flock":
        def no_flock(*args):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fcntl, "flock", no_flock)
    else:  # another user's lock file: a folder in its place fails the same way for root too
        (tmp_path / LOCKS_DIR / (CHEETAH.replace("/", "--") + ".lock")).mkdir(parents=True)
    with pytest.warns(UserWarning, match="cannot lock .* concurrent builds of .* are not kept apart"):
        shards.build(CHEETAH)
    assert file_hashes(CHEETAH) == expected[CHEETAH]


class InProcessWorkers:
    """A runner that collects in this process but presents itself as workers (as a pool or Ray
    would), so the build writes while it collects; it can fail after `fail_after` shards."""

    in_process = False

    def __init__(self, root, fail_after=None):
        self.root, self.fail_after, self.seen_writing = root, fail_after, False

    def run(self, r, todo, num_envs, progress):
        import time

        for n, shard in enumerate(todo):
            if n == self.fail_after:
                raise RuntimeError("a worker died")
            if n == len(todo) - 1:  # the last shard: the writer should be at work already
                deadline = time.monotonic() + 30
                while not self.seen_writing and time.monotonic() < deadline:
                    self.seen_writing = any(self.root.glob(".bitr-build-*"))  # the writer's scratch copy
                    time.sleep(0.01)
            yield shard, shards.run_shard(r, shard, num_envs)


def test_with_workers_the_dataset_is_written_while_they_collect(one_process, tmp_path, monkeypatch):
    _, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    runner = InProcessWorkers(tmp_path)
    shards.build(CHEETAH, runner=runner)
    assert runner.seen_writing  # the writer started before the last shard came in
    assert file_hashes(CHEETAH) == expected[CHEETAH]


def test_a_failed_worker_leaves_no_dataset_and_no_writer(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="a worker died"):
        shards.build(CHEETAH, runner=InProcessWorkers(tmp_path, fail_after=len(shards.plan(recipe(CHEETAH))) - 2))
    assert not exists(CHEETAH) and not list(tmp_path.glob(".bitr-build-*"))
    assert not any(t.name == "bitr-dataset-writer" for t in threading.enumerate())
    assert len(list(shards.shard_folder(recipe(CHEETAH)).glob("shard-*.npz"))) >= 2  # kept for a resume


def test_a_failed_writer_stops_the_build_before_the_rest_is_collected(tmp_path, monkeypatch):
    """A full disk while writing ends the build at the next shard, not hours later once every
    shard is collected; the shards collected so far stay for a resume."""
    import errno

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setattr(shards, "SHARD_STEPS", 400)
    monkeypatch.setattr(shards, "write_dataset", full_disk)
    collected = []
    with pytest.raises(OSError, match="No space left"):
        shards.build(CHEETAH, runner=InProcessWorkers(tmp_path), on_shard=lambda shard, _: collected.append(shard))
    plan = shards.plan(recipe(CHEETAH))
    references = sum(s.run != shards.DATA for s in plan)  # the writer starts once they are in
    data = len(plan) - references
    assert references < len(collected) <= references + 4 < references + data
    assert not exists(CHEETAH)


def test_without_force_a_dataset_built_meanwhile_is_kept(one_process, monkeypatch):
    """`bitr datasets build` lists what to build first; another job may build one of them before
    this one reaches it: without --force, that dataset is kept, not written again."""
    from bitr_envs.datasets.storage import data_file

    root, expected = one_process
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    before = data_file(POINT).stat().st_mtime_ns
    shards.build(POINT, force=False)
    assert data_file(POINT).stat().st_mtime_ns == before and file_hashes(POINT) == expected[POINT]


def test_a_build_worker_starts_without_the_evaluators_imports():
    """Each `--jobs` worker imports the `bitr` command's module (spawn re-imports the main
    script): it must not pull in the evaluator (scipy, the runner), which cost a worker about
    0.6 s of start-up and the command as much before it began."""
    import subprocess
    import sys

    code = ("import sys, bitr_eval.cli; "
            "print(sorted(m for m in ('scipy', 'bitr_eval.runner', 'torch') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


class RecordedProgress(shards.BuildProgress):
    """What a build reports: each part's latest total and its progress, and the stages."""

    def __init__(self):
        self.totals, self.done, self.stages = {}, {}, []

    def planned(self, part, total):
        assert total >= self.done.get(part, 0), f"{part}: total {total} below the {self.done[part]} done"
        self.totals[part] = total

    def advanced(self, part, amount):
        self.done[part] = self.done.get(part, 0) + amount

    def stage(self, message):
        self.stages.append(message)


@pytest.mark.parametrize("workers", [False, True])
def test_the_progress_totals_end_at_what_was_collected_and_written(tmp_path, monkeypatch, workers):
    """Hoppers fall, so the plan's bound (episodes x horizon) overstates the steps: the totals are
    lowered as shards come in and end at the dataset's own counts; the reference runs, which are
    not in the dataset, are counted apart; the write says when it checksums."""
    import minari

    hopper = "bitr/hopper-param/test-iid-tiny-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    progress = RecordedProgress()
    datasets.build(hopper, progress=progress, runner=InProcessWorkers(tmp_path) if workers else None)
    metadata = minari.load_dataset(hopper).storage.metadata
    r = recipe(hopper)
    assert progress.totals[shards.DATA] == progress.done[shards.DATA] == metadata["total_steps"]
    assert metadata["total_steps"] < len(shards.dataset_jobs(r)) * r.horizon  # some episodes did end early
    assert progress.totals[shards.WRITING] == progress.done[shards.WRITING] == metadata["total_episodes"]
    assert progress.totals[shards.REFERENCE_RUNS] == progress.done[shards.REFERENCE_RUNS] > 0
    assert len(progress.stages) == 1 and progress.stages[0].startswith("checksumming the Minari file")
