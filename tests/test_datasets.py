"""Offline datasets: built from recipes, read back through Minari, labelled, reproducible, safe."""

import json
import re
import shutil

import gymnasium as gym
import minari
import numpy as np
import pytest

from bitr_envs import datasets
from bitr_envs.datasets import DatasetError
from bitr_envs.datasets import collect as collect_module
from bitr_envs.datasets.recipes import all_recipes, recipe
from bitr_eval.cli import main as bitr_main

POINT = "bitr/point-robot-sparse/train-iid-tiny-v0"
POINT_OOD = "bitr/point-robot-sparse/train-ood-tiny-v0"
POINT_OTHER = "bitr/point-robot-sparse/train-other-tiny-v0"
REACH = "bitr/reach-sparse/test-iid-tiny-v0"
CHEETAH = "bitr/cheetah-vel/test-iid-tiny-v0"
HOPPER = "bitr/hopper-param/test-iid-tiny-v0"
CHEETAH_DIR = "bitr/cheetah-dir/test-iid-tiny-v0"
ANT = "bitr/ant-dir/test-iid-tiny-v0"
WALKER = "bitr/walker-param/train-iid-tiny-v0"  # train split: where the training data comes from


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    """A Minari root with the tiny datasets most tests read, built once."""
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        for dataset_id in (POINT, POINT_OOD, POINT_OTHER, REACH, CHEETAH, HOPPER, CHEETAH_DIR, ANT, WALKER):
            datasets.build(dataset_id)
        yield root


@pytest.fixture
def root(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return minari_root


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """An empty Minari root for tests that build or damage datasets."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def labels(dataset_id):
    data = datasets.load(dataset_id)
    return set(np.concatenate([t.behaviours for t in data.tasks]).tolist()), data


def test_minari_reads_the_dataset_with_task_and_behaviour_labels(root):
    dataset = minari.load_dataset(POINT)
    r = recipe(POINT)
    assert dataset.total_episodes == 30 * r.episodes_per_task
    episodes = list(dataset.iterate_episodes())
    goals = [t["goal"] for t in gym.make("bitr/PointRobotSparse-v0").unwrapped.tasks]
    seen_tasks = set()
    for episode in episodes:
        task_ids = episode.infos["task_id"]
        assert (task_ids == task_ids[0]).all() and len(task_ids) == len(episode.observations)
        seen_tasks.add(int(task_ids[0]))
        # the sparse reward of every stored step is the env's own: 1 within 0.2 of the goal
        inside = np.linalg.norm(episode.observations[1:] - goals[task_ids[0]], axis=1) <= 0.2
        np.testing.assert_array_equal(episode.rewards, inside.astype(float))
    assert seen_tasks == set(range(30))
    names = dataset.storage.metadata["bitr_behaviours"]
    pool = {names.index(b) for b in r.shares}
    assert {int(e.infos["behaviour"][0]) for e in episodes} == pool


def test_recover_environment_gives_the_bitr_env(root):
    env = minari.load_dataset(POINT).recover_environment()
    assert env.spec.id == "bitr/PointRobotSparse-v0" and env.unwrapped.split == "train"
    eval_env = minari.load_dataset(REACH).recover_environment(eval_env=True)
    assert eval_env.unwrapped.split == "test" and eval_env.unwrapped.sparse


def test_reference_scores_are_stored(root):
    dataset = minari.load_dataset(POINT)
    metadata = dataset.storage.metadata
    refs = metadata["bitr_reference_returns"]
    assert len(refs["random"]) == len(refs["expert"]) == 30
    assert metadata["ref_min_score"] == pytest.approx(np.mean(refs["random"]))
    assert np.mean(refs["expert"]) > np.mean(refs["random"]) + 5
    expert_return = np.mean(refs["expert"])
    assert minari.get_normalized_score(dataset, np.array([expert_return])) == pytest.approx(1.0)
    assert datasets.load(POINT).normalized_score(0, refs["expert"][0]) == pytest.approx(100.0)


def test_the_metadata_says_how_to_get_the_dataset(root):
    """`minari show` prints the description; its own "Download" line (`minari download ID`) is
    fixed by Minari and cannot fetch a dataset built where it is used, so the description names
    the commands that can, and where the wheel keeps the recipe card."""
    import re
    from pathlib import Path

    import bitr_envs

    description = minari.load_dataset(POINT).storage.metadata["description"]
    assert f"`bitr datasets build {POINT}`" in description
    assert f"`bitr datasets download {POINT} --remote file:///path/to/mirror`" in description
    card = re.search(r"recipe card (\S+\.toml)", description)[1]
    assert card == "bitr_envs/datasets/cards/point-robot.toml"
    assert (Path(bitr_envs.__file__).parent.parent / card).is_file()


@pytest.mark.parametrize("dataset_id", ["bitr/point-robot-sparse/test-iid-tiny-v0", CHEETAH])
def test_a_build_today_has_the_pinned_checksums(scratch_root, dataset_id):
    """The description and Minari's other fields are outside both checksums (the hdf5 file holds
    only episodes; `content_sha256` covers the bitr_* fields and the reference scores)."""
    from bitr_envs.datasets import storage

    datasets.build(dataset_id)
    assert storage.file_hashes(dataset_id) == storage.pinned(dataset_id)


def test_make_env_and_datasets_gives_the_env_its_training_data_and_context(root):
    import bitr_envs

    env, train, context = bitr_envs.make_env_and_datasets("bitr/PointRobotSparse-v0", split="train",
                                                          profile="tiny", task="random")
    assert env.spec.id == "bitr/PointRobotSparse-v0" and env.unwrapped.split == "train" and env.unwrapped.draws_tasks
    assert train.dataset_id == POINT and context["iid"] is train  # the train split's iid context: read once
    assert context["ood"].dataset_id == POINT_OOD and context["other"].dataset_id == POINT_OTHER
    assert set(context) == {"iid", "ood", "other"}
    built = " ".join(f"bitr/point-robot-sparse/test-{pool}-tiny-v0" for pool in ("iid", "ood", "other"))
    with pytest.raises(DatasetError, match=rf"3 of the datasets .* Build them with `bitr datasets build {built}`"):
        bitr_envs.make_env_and_datasets("bitr/PointRobotSparse-v0", profile="tiny")  # the test split's context
    with pytest.raises(ValueError, match="Unknown profile 'huge': .* tiny, lite, full"):
        bitr_envs.make_env_and_datasets("bitr/PointRobotSparse-v0", profile="huge")
    with pytest.raises(ValueError, match="no 'ood' split"):
        bitr_envs.make_env_and_datasets("bitr/CheetahDir-v0", split="ood")
    with pytest.raises(ValueError, match="Known ids"):
        bitr_envs.make_env_and_datasets("bitr/CheetahSpeed-v0")


def test_ood_behaviours_never_occur_in_iid_data(root):
    iid, data = labels(POINT)
    ood, _ = labels(POINT_OOD)
    assert iid and ood and not iid & ood
    names = data.behaviour_names
    assert {names[i] for i in iid} == set(recipe(POINT).shares)
    assert {names[i] for i in ood} == set(recipe(POINT_OOD).shares)


def test_meta_world_data_keeps_the_goal_hidden(root):
    data = datasets.load(REACH)
    assert len(data.tasks) == 10
    for task in data.tasks:
        assert (task.observations[:, -3:] == 0).all()
        assert len(task) == 4 * 500
    expert = data.behaviour_names.index("expert")
    expert_rewards = np.concatenate([t.rewards[t.behaviours == expert] for t in data.tasks])
    assert expert_rewards.mean() > 0.3  # the scripted expert reaches the goal (sparse reward = success)


def mean_return_per_behaviour(dataset_id):
    data = datasets.load(dataset_id)
    returns = {}
    for _task, label, episode_return in data.episode_returns():
        returns.setdefault(data.behaviour_names[label], []).append(episode_return)
    per_behaviour = recipe(dataset_id).episodes_per_task * len(data.tasks) // len(returns)
    assert all(len(r) == per_behaviour for r in returns.values())  # equal shares, every episode
    return {name: np.mean(r) for name, r in returns.items()}, data


def test_sac_behaviour_policies_are_ordered_by_quality(root):
    # The committed snapshots in bitr_envs/datasets/cards/policies/ must keep their quality levels.
    mean, data = mean_return_per_behaviour(CHEETAH)
    assert mean["random"] + 150 < mean["early"] < mean["medium"] - 20 < mean["expert"] - 30
    assert all(len(t) == 4 * 200 for t in data.tasks) and not any(t.terminals.any() for t in data.tasks)
    mean, data = mean_return_per_behaviour(HOPPER)
    assert mean["random"] < mean["early"] < mean["medium"] - 100 < mean["expert"] - 200
    assert any(t.terminals.any() for t in data.tasks)  # hoppers fall: episodes end early
    mean, data = mean_return_per_behaviour(CHEETAH_DIR)
    # lite data: -19 < 323 < 529 < 1084; the tiny data has one episode per task and behaviour
    assert mean["random"] + 200 < mean["early"] < mean["medium"] - 100 < mean["expert"] - 300
    assert len(data.tasks) == 2  # backward and forward, in every split
    mean, data = mean_return_per_behaviour(ANT)
    assert mean["random"] + 150 < mean["early"] < mean["medium"] - 100 < mean["expert"] - 130
    mean, data = mean_return_per_behaviour(WALKER)
    assert mean["random"] + 50 < mean["early"] < mean["medium"] - 40 < mean["expert"] - 100
    assert any(t.terminals.any() for t in data.tasks)  # walkers fall too


def test_same_recipe_gives_identical_arrays(root, tmp_path, monkeypatch):
    first = datasets.load(POINT)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "again"))
    datasets.build(POINT, num_envs=3)  # a different batch size must not change the data
    second = datasets.load(POINT)
    for a, b in zip(first.tasks, second.tasks):
        for field in ("observations", "actions", "rewards", "behaviours", "terminals", "timeouts"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_loader_gives_contiguous_per_task_arrays_and_samples(root):
    data = datasets.load(POINT)
    task = data.tasks[4]
    n = recipe(POINT).episodes_per_task * 20
    assert task.observations.shape == (n, 2) and task.actions.shape == (n, 2)
    np.testing.assert_array_equal(task.next_observations[:19], task.observations[1:20])
    assert task.timeouts.sum() == recipe(POINT).episodes_per_task and not task.terminals.any()
    rng = np.random.default_rng(0)
    batch = data.sample_batch([1, 4, 7], 64, rng)
    assert batch["observations"].shape == (3, 64, 2) and batch["rewards"].shape == (3, 64)
    window = data.sample_context(4, 10, rng, window=True)
    start = int(np.flatnonzero((task.observations == window["observations"][0]).all(1))[0])
    np.testing.assert_array_equal(window["actions"], task.actions[start : start + 10])


def test_local_remote_round_trip(root, tmp_path, monkeypatch):
    mirror = f"file://{tmp_path / 'mirror'}"
    from bitr_envs.datasets.remote import download, publish

    publish(POINT, remote=mirror)
    with pytest.raises(DatasetError, match="already has"):
        publish(POINT, remote=mirror)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetError, match="not in the local Minari root"):
        datasets.load(POINT)
    assert bitr_main(["datasets", "download", POINT, "--remote", mirror]) == 0
    downloaded = datasets.load(POINT)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    np.testing.assert_array_equal(downloaded.tasks[3].actions, datasets.load(POINT).tasks[3].actions)
    with pytest.raises(DatasetError, match="Cannot download"):
        download("bitr/point-robot-sparse/test-iid-tiny-v0", remote=mirror)
    with pytest.raises(DatasetError, match="No remote given"):
        download(POINT, force=True)


def test_pin_records_checksums_that_verify_then_holds_to(root, scratch_root, tmp_path, monkeypatch):
    from bitr_envs.datasets.recipes import recipes_dir

    shutil.copytree(root / "bitr", scratch_root / "bitr")
    shutil.copytree(recipes_dir(), tmp_path / "cards")
    (tmp_path / "cards" / "pins.json").unlink()
    monkeypatch.setenv("BITR_RECIPES", str(tmp_path / "cards"))
    assert bitr_main(["datasets", "pin", POINT]) == 0
    assert set(json.loads((tmp_path / "cards" / "pins.json").read_text())) == {POINT}
    assert datasets.verify(POINT) == []
    data_file = scratch_root / POINT / "data" / "main_data.hdf5"
    data_file.write_bytes(data_file.read_bytes()[:-1] + b"x")
    assert bitr_main(["datasets", "pin", POINT]) == 2  # a damaged dataset is never pinned


def test_an_unreachable_remote_is_one_clear_error(root, monkeypatch, capsys):
    def no_network(dataset_id):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(minari, "download_dataset", no_network)
    assert bitr_main(["datasets", "download", POINT, "--remote", "hf://nowhere-org", "--force"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Cannot reach hf://nowhere-org" in error and "Name or service" in error
    assert "bitr datasets build" in error and datasets.verify(POINT) == []  # the local copy is untouched


def test_edited_metadata_and_unpinned_bytes_are_caught(root, scratch_root, monkeypatch):
    from bitr_envs.datasets import storage

    shutil.copytree(root / "bitr", scratch_root / "bitr")
    hashes = storage.file_hashes(POINT)
    monkeypatch.setattr(storage, "pins", lambda: {POINT: hashes})
    assert datasets.verify(POINT) == []
    monkeypatch.setattr(storage, "pins", lambda: {POINT: {**hashes, "data_sha256": "0" * 64}})
    assert "not the benchmark's dataset" in datasets.verify(POINT)[0]
    monkeypatch.setattr(storage, "pins", lambda: {POINT: hashes})

    path = scratch_root / POINT / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["bitr_reference_returns"]["expert"][0] /= 2  # a lower bar inflates every normalised score
    path.write_text(json.dumps(metadata))
    problems = datasets.verify(POINT)
    assert problems and "was changed after the dataset was built" in problems[0]
    assert storage.file_hashes(POINT)["content_sha256"] != hashes["content_sha256"]


def test_corrupted_and_truncated_files_are_clear_errors(root, scratch_root):
    shutil.copytree(root / "bitr", scratch_root / "bitr")
    data_file = scratch_root / POINT / "data" / "main_data.hdf5"
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # silent damage: same size, bad bytes
    data_file.write_bytes(bytes(raw))
    problems = datasets.verify(POINT)
    assert problems and "checksum" in problems[0] and "bitr datasets build --force" in problems[0]
    assert bitr_main(["datasets", "verify", POINT]) == 1

    data_file.write_bytes(bytes(raw[: len(raw) // 3]))  # truncated download
    with pytest.raises(DatasetError, match=rf"{POINT}.*bitr datasets verify {POINT}"):
        datasets.load(POINT)


@pytest.mark.parametrize("failure", [MemoryError(),
                                     OSError("Can't synchronously read data (memory allocation failed for chunk)")])
def test_running_out_of_memory_while_loading_is_not_called_damage(root, monkeypatch, failure):
    """h5py words an allocation failure as an OSError; either way the user is told to load fewer
    tasks or allow more memory, not to rebuild an intact dataset."""
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    def get_episodes(self, indices):
        raise failure
        yield

    monkeypatch.setattr(HDF5Storage, "get_episodes", get_episodes)
    with pytest.raises(MemoryError, match=rf"Out of memory while loading {POINT} .* tasks=\[\.\.\.\]"):
        datasets.load(POINT)


def test_an_allocation_failure_worded_as_a_format_error_is_named_memory(root, monkeypatch):
    """Under a memory limit, Minari reports h5py's failed allocation of an info's array as "Infos
    are in an unsupported format". The episode that failed then reads on its own, so the loader
    says memory (load fewer tasks), not damage; a failure that stays on its own is damage."""
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    real, worded = HDF5Storage.get_episodes, "Infos are in an unsupported format; see Minari documentation"

    def runs_out_after_three(self, indices):
        indices = list(indices)
        for n, episode in enumerate(real(self, indices)):
            if len(indices) > 1 and n == 3:  # a whole load runs out; one episode alone fits
                raise ValueError(worded)
            yield episode

    monkeypatch.setattr(HDF5Storage, "get_episodes", runs_out_after_three)
    with pytest.raises(MemoryError, match=rf"Out of memory while loading {POINT} .* tasks=\[\.\.\.\]"):
        datasets.load(POINT)

    def always_fails(self, indices):
        raise ValueError(worded)
        yield

    monkeypatch.setattr(HDF5Storage, "get_episodes", always_fails)
    with pytest.raises(DatasetError, match=rf"episode 0 fails on its own too\): a damaged file.*verify {POINT}"):
        datasets.load(POINT)


def test_version_mismatch_is_a_clear_error(root, scratch_root):
    shutil.copytree(root / "bitr", scratch_root / "bitr")
    metadata_file = scratch_root / POINT / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata_file.write_text(json.dumps({**metadata, "bitr_format_version": 99}))
    with pytest.raises(DatasetError, match="format version 99"):
        datasets.load(POINT)
    metadata_file.write_text(json.dumps({**metadata, "minari_version": "99.0.0"}))
    with pytest.raises(DatasetError, match="Minari cannot open"):
        datasets.load(POINT)


def test_an_interrupted_build_leaves_no_dataset(scratch_root, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the user's Ctrl-C in the middle of writing

    monkeypatch.setattr(collect_module, "install", crash)
    with pytest.raises(KeyboardInterrupt):
        datasets.build(POINT)
    assert not (scratch_root / POINT).exists()
    assert not list(scratch_root.glob(".bitr-build-*"))  # the scratch copy is gone too
    with pytest.raises(DatasetError, match=f"bitr datasets build {POINT}"):
        datasets.load(POINT)


def test_dataset_ids_and_bad_ids():
    ids = {r.dataset_id for r in all_recipes()}
    assert {POINT, POINT_OOD, REACH, "bitr/point-robot/ood-ood-lite-v0"} <= ids
    assert not any("cheetah-dir/ood-" in i for i in ids)  # no ood split, no ood-split datasets
    with pytest.raises(ValueError, match="not a BITR dataset id"):
        recipe("point-robot")
    with pytest.raises(ValueError, match="No recipe defines"):
        recipe("bitr/point-robot/train-iid-huge-v0")
    assert bitr_main(["datasets", "build", "bitr/nothing/*"]) == 2
    assert all(recipe(i).dataset_id == i for i in ids)


def test_one_dataset_id_looks_only_at_its_own_family(monkeypatch):
    """Finding a recipe, or expanding bitr/<env>/*, draws that family's tasks only: drawing
    Meta-World's took seconds before every build."""
    from bitr_envs import core
    from bitr_envs.cli import _dataset_ids
    from bitr_envs.meta_world import MetaWorldTaskEnv

    def not_this_family(cls, rng):
        raise AssertionError(f"{cls.__name__}'s tasks were drawn")

    core._drawn_table.cache_clear()
    monkeypatch.setattr(MetaWorldTaskEnv, "draw_tasks", classmethod(not_this_family))
    assert recipe(POINT).dataset_id == POINT
    ids = _dataset_ids(["bitr/point-robot/*-lite-v0"])
    assert len(ids) == 9 and all(i.startswith("bitr/point-robot/") and i.endswith("-lite-v0") for i in ids)
    with pytest.raises(AssertionError, match="tasks were drawn"):  # the patch does bite
        recipe(REACH)


def test_bad_recipe_cards_are_refused(tmp_path, monkeypatch):
    from bitr_envs.datasets import recipes

    card = (recipes.recipes_dir() / "point-robot.toml").read_text()
    monkeypatch.setenv("BITR_RECIPES", str(tmp_path))
    (tmp_path / "bad.toml").write_text(card.replace('detour = 0.34', 'expert = 0.34'))
    with pytest.raises(ValueError, match=r"bad.toml: behaviours \['expert'\] are in both pools"):
        all_recipes()
    (tmp_path / "bad.toml").write_text(card.replace('expert = "expert"', 'expert = "oracle"'))
    with pytest.raises(ValueError, match="names its expert"):
        all_recipes()


def test_cli_build_list_info(scratch_root, capsys):
    assert bitr_main(["datasets", "build", "bitr/point-robot/test-*-tiny-v0"]) == 0
    assert bitr_main(["datasets", "build", "bitr/point-robot/test-iid-tiny-v0"]) == 0
    assert "already built" in capsys.readouterr().out
    assert bitr_main(["datasets", "list", "--profile", "tiny", "--env", "bitr/PointRobot-v0"]) == 0
    listing = capsys.readouterr().out
    built = [line for line in listing.splitlines() if line.startswith("bitr/point-robot/test-")]
    assert len(built) == 3 and all("not built" not in line for line in built)
    assert re.search(r"bitr/point-robot/train-iid-tiny-v0 +8 +not built", listing)
    assert bitr_main(["datasets", "info", "bitr/point-robot/test-ood-tiny-v0"]) == 0
    info = capsys.readouterr().out
    assert "detour" in info and "expert" not in info.split("label")[1]
