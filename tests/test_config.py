"""A run's settings: every profile and method resolves to the settings recorded before the config
was split into shared and per-method parts, the committed runs' records agree, and every flag of
the trainers' command lines says what it does."""

import argparse
import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from bitr_agent.cli import build_parser  # noqa: E402
from bitr_agent.config import (  # noqa: E402
    METHOD_CONFIGS,
    PROFILES,
    Config,
    Profile,
    TrainConfig,
    from_profile,
    resolve,
)
from bitr_agent.methods import ALGOS  # noqa: E402
from bitr_agent.utils import add_dataclass_flags  # noqa: E402

ROOT = Path(__file__).parent.parent

# Every profile's settings as the single-file trainer resolved them (its `resolve(replace(PROFILES[p], ...))`),
# before `algo`, `dataset` and `seed`; the same for every method but for a variant's fixed settings.
RECORDED_PROFILES = {
    "quick": {
        "adversary_ramp": False, "adversary_weight": 0.3, "batch_per_task": 16, "checkpoint_every": 500,
        "club_weight": 10.0, "context_size": 64, "contrastive_weight": 1.0, "corro_negatives": 16,
        "corro_relabel": "model", "cql_actions": 5, "cql_weight": 5.0, "csro_focal_weight": 10.0, "gamma": 0.99,
        "hidden": 128, "history": 8, "imagined_per_task": 8, "log_every": 250, "lr": 0.0003, "mlp_wm_members": 5,
        "reconstruction_weight": 1.0, "sac_iterations": 4000, "task_batch": 16, "tau": 0.005, "temperature": 0.1,
        "threads": 1, "uncertainty_weight": 0.0, "unicorn_beta": -1.0, "unit_z": False, "width": 64,
        "windows_per_task": 8, "wm_heads": 4, "wm_iterations": 1500, "wm_layers": 2, "wm_lr": 0.001, "z_dim": 8,
    },
    "lite": {
        "adversary_ramp": True, "adversary_weight": 0.3, "batch_per_task": 32, "checkpoint_every": 2000,
        "club_weight": 10.0, "context_size": 64, "contrastive_weight": 1.0, "corro_negatives": 16,
        "corro_relabel": "model", "cql_actions": 4, "cql_weight": 5.0, "csro_focal_weight": 10.0, "gamma": 0.99,
        "hidden": 128, "history": 8, "imagined_per_task": 8, "log_every": 1000, "lr": 0.0003, "mlp_wm_members": 5,
        "reconstruction_weight": 1.0, "sac_iterations": 40000, "task_batch": 16, "tau": 0.005, "temperature": 0.1,
        "threads": 1, "uncertainty_weight": 0.0, "unicorn_beta": -1.0, "unit_z": True, "width": 128,
        "windows_per_task": 8, "wm_heads": 4, "wm_iterations": 5000, "wm_layers": 2, "wm_lr": 0.001, "z_dim": 16,
    },
    "paper": {
        "adversary_ramp": True, "adversary_weight": 0.3, "batch_per_task": 256, "checkpoint_every": 10000,
        "club_weight": 10.0, "context_size": 64, "contrastive_weight": 1.0, "corro_negatives": 16,
        "corro_relabel": "model", "cql_actions": 10, "cql_weight": 0.5, "csro_focal_weight": 10.0, "gamma": 0.99,
        "hidden": 256, "history": 8, "imagined_per_task": 8, "log_every": 5000, "lr": 0.0003, "mlp_wm_members": 5,
        "reconstruction_weight": 1.0, "sac_iterations": 500000, "task_batch": 16, "tau": 0.005, "temperature": 0.1,
        "threads": os.cpu_count() or 1, "uncertainty_weight": 0.0, "unicorn_beta": -1.0, "unit_z": True,
        "width": 256, "windows_per_task": 8, "wm_heads": 4, "wm_iterations": 10000, "wm_layers": 2, "wm_lr": 0.001,
        "z_dim": 16,
    },
}
RECORDED_FIXED = {"bitr-no-cql": {"cql_weight": 0.0}, "bitr-no-invariance": {"adversary_weight": 0.0},
                  "bitr-no-wm": {"imagined_per_task": 0, "reconstruction_weight": 0.0}}
FAMILIES = ["point-robot-sparse", "cheetah-vel", "cheetah-vel-sparse", "reach-sparse", "hopper-param",
            "walker-param", "ant-dir", "cheetah-dir"]

# `bitr-agent train`'s flags before the split: every one still works.
RECORDED_FLAGS = (
    "--adversary-ramp --adversary-weight --algo --batch-per-task --checkpoint-every --club-weight --context-size "
    "--contrastive-weight --corro-negatives --corro-relabel --cql-actions --cql-weight --csro-focal-weight --dataset "
    "--gamma --help --hidden --history --imagined-per-task --log-every --lr --mlp-wm-members --no-adversary-ramp "
    "--no-unit-z --out --profile --reconstruction-weight --restart --sac-iterations --seed --task-batch --tau "
    "--temperature --threads --uncertainty-weight --unicorn-beta --unit-z --width --windows-per-task --wm-heads "
    "--wm-iterations --wm-layers --wm-lr --z-dim").split()


@pytest.mark.parametrize("profile", list(RECORDED_PROFILES))
@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_profile_and_method_resolves_to_the_recorded_settings(profile, algo):
    assert set(PROFILES) == set(RECORDED_PROFILES)
    for family in FAMILIES:
        dataset = f"bitr/{family}/train-iid-lite-v0"
        resolved = dataclasses.asdict(resolve(from_profile(profile, algo=algo, dataset=dataset, seed=2)))
        assert resolved == {**RECORDED_PROFILES[profile], **RECORDED_FIXED.get(algo, {}),
                            "algo": algo, "dataset": dataset, "seed": 2}, family


def test_the_command_line_wins_over_the_profile_and_a_variant_over_both():
    cfg = from_profile("lite", algo="bitr-no-cql", cql_weight=2.0, z_dim=4, corro_negatives=3)
    assert (cfg.z_dim, cfg.corro_negatives, cfg.width) == (4, 3, 128)
    assert resolve(cfg).cql_weight == 0.0


def test_a_family_override_applies_to_its_family_under_its_profile_only(monkeypatch):
    """Ready for settings that differ by family (none do yet): profile < family < command line."""
    lite = PROFILES["lite"]
    monkeypatch.setitem(PROFILES, "lite", Profile(lite.purpose, lite.settings, {"cheetah-vel": {"z_dim": 32}}))
    assert from_profile("lite", dataset="bitr/cheetah-vel/train-iid-lite-v0").z_dim == 32
    assert from_profile("lite", dataset="bitr/cheetah-vel/train-iid-lite-v0", z_dim=4).z_dim == 4
    assert from_profile("lite", dataset="bitr/cheetah-vel-sparse/train-iid-lite-v0").z_dim == 16
    assert from_profile("quick", dataset="bitr/cheetah-vel/train-iid-lite-v0").z_dim == 8


def test_the_committed_runs_record_what_their_profile_resolves_to():
    """Their `config` is today's flat record: the same settings, by the same names, as the same
    command resolves to now; runs made before a setting was added lack only that one. (The runs
    under `experiments/` override settings on their command line, `leaderboard/REPRODUCE.md`.)"""
    import json

    runs = ROOT / "leaderboard" / "runs"
    agents = sorted(p for board in ("lite", "quick") for p in (runs / board).glob("**/agent.pt"))
    assert len(agents) > 100
    for path in agents:
        record = torch.load(path, weights_only=True)["config"]
        profile = json.loads((path.parent / "training.json").read_text())["profile"]
        now = dataclasses.asdict(resolve(from_profile(profile, algo=record["algo"], dataset=record["dataset"],
                                                      seed=record["seed"])))
        assert set(now) - set(record) <= {"unit_z"} and set(record) <= set(now), path
        assert {k: now[k] for k in record} == record, path
        Config(**record)  # and it reads back as the run's settings


def test_each_method_setting_has_one_home():
    names = [f.name for cls in (TrainConfig, *METHOD_CONFIGS) for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Config))
    assert {m.config_class for m in ALGOS.values() if m.config_class} == set(METHOD_CONFIGS)


def subcommands(parser):
    return parser._subparsers._group_actions[0].choices


def undocumented(parser) -> list[str]:
    return [a.option_strings[0] if a.option_strings else a.dest for a in parser._actions
            if not (a.help or "").strip().removesuffix("(default: %(default)s)").strip()]


def test_every_flag_of_the_trainers_says_what_it_does(monkeypatch):
    commands = subcommands(build_parser())
    assert set(commands) == {"train", "sweep", "probes", "calibration"}
    for name, command in commands.items():
        assert undocumented(command) == [], name
    flags = {flag for action in commands["train"]._actions for flag in action.option_strings}
    assert flags == {"-h", *RECORDED_FLAGS}
    spec = importlib.util.spec_from_file_location("train_sac", ROOT / "datasets" / "train_sac.py")
    train_sac = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "train_sac", train_sac)  # its dataclass looks its module up
    spec.loader.exec_module(train_sac)
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, train_sac.Args, underscore_aliases=True)
    assert undocumented(parser) == []


def test_the_help_text_is_the_fields_documentation():
    help_text = " ".join(subcommands(build_parser())["train"].format_help().split())
    assert "--unit-z, --no-unit-z z on the unit sphere: InfoNCE scores only z's direction" in help_text
    assert "--corro-negatives INT negatives per anchor" in help_text
    bitr_family = "bitr, bitr-no-invariance, bitr-no-wm, bitr-no-cql, bitr-mlp-wm, bitr-mean-pool"
    assert f"settings of --algo {bitr_family}: BITR's own settings" in help_text
