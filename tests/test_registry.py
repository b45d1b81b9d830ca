"""Every id is registered, makes, and passes Gymnasium's own checker; the CLI lists them."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import ALL_IDS
from gymnasium.utils.env_checker import check_env

import bitr_envs
from bitr_eval.cli import main as bitr_main

EXPECTED_IDS = {
    "bitr/PointRobot-v0", "bitr/PointRobotSparse-v0", "bitr/CheetahVel-v0",
    "bitr/CheetahVelSparse-v0", "bitr/CheetahDir-v0", "bitr/AntDir-v0", "bitr/HopperParam-v0",
    "bitr/HopperParamSparse-v0", "bitr/WalkerParam-v0", "bitr/WalkerParamSparse-v0",
    "bitr/Reach-v0", "bitr/ReachSparse-v0", "bitr/Push-v0", "bitr/PushSparse-v0",
}


def test_every_protocol_id_is_registered():
    assert set(bitr_envs.ENVS) == EXPECTED_IDS
    assert EXPECTED_IDS <= set(gym.registry)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_passes_on_every_split(env_id):
    for split in bitr_envs.ENVS[env_id].env_class.splits():
        env = gym.make(env_id, split=split)
        check_env(env.unwrapped, skip_render_check=True)
        assert env.spec.max_episode_steps == bitr_envs.ENVS[env_id].horizon
        env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_spec_is_json_serialisable(env_id):
    # Minari stores env specs as JSON: a lambda or array in the spec would break every dataset.
    env = gym.make(env_id, split="test")
    assert gym.envs.registration.EnvSpec.from_json(env.spec.to_json()).kwargs["split"] == "test"


def test_make_without_import_through_module_prefix():
    code = (
        "import gymnasium as gym; env = gym.make('bitr_envs:bitr/PointRobotSparse-v0');"
        "print(env.reset(seed=0)[1]['task_id'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_unknown_id_is_a_clear_error():
    with pytest.raises(gym.error.Error):
        gym.make("bitr/CheetahSpeed-v0")
    with pytest.raises(ValueError, match="Known ids"):
        bitr_envs.tasks("bitr/CheetahSpeed-v0")


def test_cli_lists_and_shows(capsys):
    assert bitr_main(["envs", "list"]) == 0
    listing = capsys.readouterr().out
    for env_id in EXPECTED_IDS:
        assert env_id in listing
    row = next(line for line in listing.splitlines() if line.startswith("bitr/CheetahVelSparse-v0 "))
    assert "target speed v ~ U[0, 3]; ood U[3, 4]" in row and "30/10/10" in row and "within 0.5 of v" in row
    assert bitr_main(["envs", "show", "bitr/CheetahDir-v0"]) == 0
    shown = capsys.readouterr().out
    assert "split=train  (2 tasks)" in shown and "-1.000" in shown
    assert bitr_main(["envs", "show", "bitr/Missing-v0"]) == 2
    assert "Unknown BITR env id" in capsys.readouterr().err


def test_cli_rollout_reports_every_task(capsys):
    assert bitr_main(["envs", "rollout", "bitr/PointRobot-v0", "--split", "ood"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 10
    returns = np.array([float(r.split()[1]) for r in rows])
    assert (returns < 0).all()  # dense Point-Robot: minus the distance, every step


def test_readme_family_table_is_the_one_the_code_prints():
    from pathlib import Path

    from bitr_envs.cli import family_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert family_table(markdown=True) in readme, "README's table is stale: paste `bitr envs list --markdown`"


def test_meta_world_ids_make_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("bitr/ReachSparse-v0", split="test")
        env.reset(seed=0)
        env.step(env.action_space.sample())
