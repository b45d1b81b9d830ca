"""The `bitr-agent` command.

    bitr-agent train --algo bitr --dataset bitr/point-robot-sparse/train-iid-lite-v0 --profile quick --out runs/bitr
                                   train one method on one dataset (resumes from --out/checkpoint.pt)
    bitr-agent sweep --algos A,B --envs E1,E2 --seeds 0,1,2 --out runs/sweep
                                   train and evaluate a grid of methods x families x seeds, resumably
    bitr-agent probes RUNS         the encoders' end-of-training probes of a sweep folder, as a table
    bitr-agent calibration RUNS    the task-given ceiling against the context-free floor, per unit
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bitr_agent.agent import AGENT_FILE, load_weights
from bitr_agent.checkpoint import RunFolderError, write_training_record
from bitr_agent.config import METHOD_CONFIGS, PROFILES, Config, TrainConfig, from_profile
from bitr_agent.diagnostics import TrainingFailed, probes_table
from bitr_agent.methods import ALGOS
from bitr_agent.sweep import add_arguments, evaluate_command, factory_for, main_from_args, result_file, run_name
from bitr_agent.train import train
from bitr_agent.utils import add_dataclass_flags, field_docs, set_fields

RUN_FIELDS = ("algo", "dataset", "seed")  # settings that name the run: flags of their own, never a profile's


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitr-agent", description="Train BITR or a peer method in one harness.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("train", help="train on a dataset (resumes from --out/checkpoint.pt)",
                              description="Train one method on one dataset; the same command after a kill resumes "
                                          "exactly from --out/checkpoint.pt.")
    docs = field_docs(TrainConfig)
    run.add_argument("--algo", default="bitr", choices=list(ALGOS), metavar="ALGO",
                     help=f"the method, one of {', '.join(ALGOS)} (bitr_agent/methods/; default: bitr)")
    run.add_argument("--dataset", required=True, help=docs["dataset"])
    run.add_argument("--profile", default="quick", choices=list(PROFILES),
                     help="the settings for a scale of machine: " + "; ".join(
                         f"{name}: {profile.purpose}" for name, profile in PROFILES.items()) + " (default: quick)")
    run.add_argument("--out", required=True, help="the run's folder: checkpoint.pt, metrics.csv, agent.pt")
    run.add_argument("--seed", type=int, default=0, help=f"{docs['seed']} (default: 0)")
    run.add_argument("--restart", action="store_true",
                     help="train a finished run that has no checkpoint.pt (a committed one) again from scratch")
    shared = run.add_argument_group(
        "settings every method shares", "each overrides --profile's value (bitr_agent/config.py); a finished run "
        "continues with a larger --sac-iterations")
    add_dataclass_flags(shared, TrainConfig, skip=RUN_FIELDS, defaults=False)
    for config_class in METHOD_CONFIGS:
        users = ", ".join(name for name, m in ALGOS.items() if m.config_class is config_class)
        own = run.add_argument_group(f"settings of --algo {users}", config_class.__doc__)
        add_dataclass_flags(own, config_class, defaults=False)
    run.set_defaults(func=_train)

    sweep = commands.add_parser("sweep", help="train and evaluate methods x families x seeds, resumably")
    add_arguments(sweep)
    sweep.set_defaults(func=_sweep)

    probing = commands.add_parser("probes", help="print the encoders' end-of-training probes of a sweep folder "
                                                 "as a Markdown table")
    probing.add_argument("runs", help="a `bitr-agent sweep --out` folder: <runs>/<algo>/seed<k>/<family>/metrics.csv")
    probing.set_defaults(func=_probes)

    calibrating = commands.add_parser("calibration", help="print the task-given ceiling against the context-free "
                                                          "floor per unit of a calibration suite, as a Markdown table")
    calibrating.add_argument("runs", help="a `bitr-agent sweep --out` folder: "
                                          "<runs>/<algo>/seed<k>/result-<suite>.json")
    calibrating.add_argument("--suite", default="lite-more-v1-calibration", help="the suite the references were "
                             "evaluated on (default: lite-more-v1-calibration)")
    calibrating.set_defaults(func=_calibration)
    return parser


def _train(args) -> int:
    cfg = from_profile(args.profile, algo=args.algo, dataset=args.dataset, seed=args.seed,
                       **set_fields(args, Config, skip=RUN_FIELDS))
    out = Path(args.out)
    try:
        train(cfg, out, restart=args.restart)
    except (TrainingFailed, RunFolderError) as err:
        print(f"bitr-agent train: {err}", file=sys.stderr)
        return 1
    write_training_record(out, cfg, args.profile)
    print(f"agent written to {out / AGENT_FILE}", flush=True)
    print(evaluation_hint(args.out, load_weights(out / AGENT_FILE)["env_id"], cfg, args.profile))
    return 0


def evaluation_hint(out: str, env_id: str, cfg: Config, profile: str) -> str:
    """How to evaluate a finished run: on the suite that matches it, with the name and result file
    the sweep would give it."""
    from bitr_eval.suites import SUITES

    chosen = suggested_suite(env_id, cfg.dataset, profile)
    if chosen is None:
        return f"no evaluation suite has {env_id} on this dataset's size (suites: {', '.join(SUITES)})"
    envs = () if {u.env_id for u in chosen.units} == {env_id} else (env_id,)
    command = evaluate_command(out, chosen.name, f"{out}/{result_file(chosen.name)}", run_name(cfg.algo, cfg.seed),
                               factory_for(cfg.algo), envs)
    return f"evaluate it with: {shlex.join(command)}"


def suggested_suite(env_id: str, dataset_id: str, profile: str):
    """The evaluation suite that matches a run: one that has this env on data of this size
    (tiny/lite/full), preferring the current (-v1) suite named like the profile, then the one of
    that name, then the smallest current one (or, with none, the smallest)."""
    from bitr_eval.suites import SUITES

    size = dataset_id.rsplit("-", 2)[-2] if dataset_id.count("-") >= 2 else ""
    fits = [s for s in SUITES.values() if any(u.env_id == env_id and u.profile == size for u in s.units)]
    if not fits:
        return None
    named = [s for name in (f"{profile}-v1", profile) for s in fits if s.name == name]
    return named[0] if named else min(fits, key=lambda s: (not s.name.endswith("-v1"), len(s.units)))


def _sweep(args) -> int:
    try:
        return main_from_args(args)
    except ValueError as err:  # an env not in the suite, an unknown placeholder: the message says what to do
        print(f"bitr-agent sweep: {err}", file=sys.stderr)
        return 2


def _probes(args) -> int:
    try:
        print(probes_table(Path(args.runs)))
    except ValueError as err:
        print(f"bitr-agent probes: {err}", file=sys.stderr)
        return 2
    return 0


def _calibration(args) -> int:
    from bitr_agent.calibration import calibration_table

    try:
        print(calibration_table(Path(args.runs), args.suite))
    except ValueError as err:  # no result files yet, or one that fails its checks (ResultError)
        print(f"bitr-agent calibration: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
