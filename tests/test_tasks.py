"""Task tables: fixed by a seed, the protocol's sizes, disjoint splits, ood outside the range."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import ALL_IDS

import bitr_envs


def features(env_id, split):
    cls = bitr_envs.ENVS[env_id].env_class
    return np.stack([cls.task_features(t) for t in cls.split_tasks(split)])


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_split_sizes_follow_the_protocol(env_id):
    cls = bitr_envs.ENVS[env_id].env_class
    sizes = {split: len(cls.split_tasks(split)) for split in cls.splits()}
    if env_id == "bitr/CheetahDir-v0":
        assert sizes == {"train": 2, "test": 2}
    elif env_id == "bitr/AntDir-v0":
        assert sizes == {"train": 30, "test": 10}
    else:
        assert sizes == {"train": 30, "test": 10, "ood": 10}


@pytest.mark.parametrize("env_id", [i for i in ALL_IDS if i != "bitr/CheetahDir-v0"])
def test_splits_are_disjoint(env_id):
    cls = bitr_envs.ENVS[env_id].env_class
    splits = {s: {features(env_id, s)[i].tobytes() for i in range(len(cls.split_tasks(s)))} for s in cls.splits()}
    for a in splits:
        assert len(splits[a]) == len(cls.split_tasks(a)), f"duplicate tasks in {a}"
        for b in splits:
            if a < b:
                assert not splits[a] & splits[b], f"{a} and {b} share a task"


def test_ood_parameters_lie_outside_the_training_range():
    point = bitr_envs.tasks("bitr/PointRobot-v0", "train"), bitr_envs.tasks("bitr/PointRobot-v0", "ood")
    assert all(0 <= t["goal_angle"] <= np.pi for t in point[0])
    assert all(np.pi <= t["goal_angle"] <= 2 * np.pi for t in point[1])
    assert all(t["goal"][1] <= 0 for t in point[1])  # the lower half-circle

    velocities = [t["target_velocity"] for t in bitr_envs.tasks("bitr/CheetahVel-v0", "train")]
    ood_velocities = [t["target_velocity"] for t in bitr_envs.tasks("bitr/CheetahVel-v0", "ood")]
    assert 0 <= min(velocities) and max(velocities) <= 3 <= min(ood_velocities) <= max(ood_velocities) <= 4

    for env_id in ("bitr/HopperParam-v0", "bitr/WalkerParam-v0"):
        log_base = np.log(np.array([1.5] * 3 + [1.3]))
        for split, (low, high) in {"train": (0, 3), "test": (0, 3), "ood": (3, 4)}.items():
            for task in bitr_envs.tasks(env_id, split):
                for (name, scale), base in zip(
                    [(n, task[f"{n}_scale"]) for n in ("body_mass", "body_inertia", "geom_friction", "dof_damping")],
                    log_base,
                ):
                    u = np.abs(np.log(scale) / base)
                    assert (u >= low - 1e-9).all() and (u <= high + 1e-9).all(), (env_id, split, name)


def test_meta_world_goals_come_from_its_ml1_sets():
    import pickle

    import metaworld

    ml1 = metaworld.ML1("push-v3", seed=bitr_envs.ENVS["bitr/Push-v0"].env_class.task_seed)
    ml1_test_goals = [pickle.loads(t.data)["rand_vec"][3:] for t in ml1.test_tasks]
    ood = bitr_envs.tasks("bitr/Push-v0", "ood")
    np.testing.assert_array_equal(ood[0]["goal"], ml1_test_goals[0])


def test_task_tables_are_pinned():
    # The task set must be identical on every machine and release: these values are the
    # protocol. If this fails, a change altered the tasks: bump the env version instead.
    point = bitr_envs.tasks("bitr/PointRobot-v0", "train")
    cheetah = bitr_envs.tasks("bitr/CheetahVel-v0", "test")
    hopper = bitr_envs.tasks("bitr/HopperParam-v0", "ood")
    reach = bitr_envs.tasks("bitr/Reach-v0", "train")
    actual = [
        point[0]["goal_angle"],
        cheetah[0]["target_velocity"],
        hopper[0]["body_mass_scale"][1],
        float(reach[0]["goal"][0]),
    ]
    np.testing.assert_allclose(actual, PINNED, rtol=0, atol=1e-12)


PINNED = [1.6079350561067187, 0.605722342588351, 0.2110370689376677, -2.3499834888002225e-05]


def test_task_tables_are_identical_in_a_fresh_process():
    code = (
        "import bitr_envs, numpy as np;"
        "print(repr(float(bitr_envs.tasks('bitr/AntDir-v0', 'test')[3]['direction_angle'])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == bitr_envs.tasks("bitr/AntDir-v0", "test")[3]["direction_angle"]


def test_task_tables_drawn_by_two_threads_at_once_are_the_same_tables():
    # Meta-World reseeds the global np.random for its draw; the evaluator draws from two threads
    # (its progress bar and its unit limits), which once gave "Only generated 37 unique goals".
    from concurrent.futures import ThreadPoolExecutor

    from bitr_envs import core

    cls = bitr_envs.ENVS["bitr/Reach-v0"].env_class
    expected = cls.task_table()
    core._drawn_table.cache_clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        tables = list(pool.map(lambda _: cls.task_table(), range(4)))
    for table in tables:
        for split, tasks in expected.items():
            for got, want in zip(table[split], tasks, strict=True):
                np.testing.assert_array_equal(got["goal"], want["goal"])


def test_task_tables_are_read_only():
    task = bitr_envs.tasks("bitr/PointRobot-v0", "train")[0]
    with pytest.raises(TypeError):
        task["goal_angle"] = 0.0
    with pytest.raises(ValueError):
        task["goal"][0] = 0.0


def test_bad_split_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown split 'valid'"):
        bitr_envs.tasks("bitr/CheetahVel-v0", "valid")
    with pytest.raises(ValueError, match="no 'ood' split"):
        bitr_envs.tasks("bitr/AntDir-v0", "ood")
