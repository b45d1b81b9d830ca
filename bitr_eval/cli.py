"""The `bitr` command: `envs` and `datasets` (from `bitr_envs.cli`), `evaluate` and `leaderboard`.

    bitr evaluate --agent SPEC     run an evaluation suite (see bitr_eval)
    bitr leaderboard add FILE      check a result file and file it under leaderboard/results/
    bitr leaderboard render        write leaderboard/README.md and leaderboard/index.html
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from bitr_envs.cli import add_commands, format_table


def format_summary(summary) -> str:
    """'mean [low, high]' of a summary record, or '-' when there is none."""
    if summary is None:
        return "-"
    low, high = summary["mean_ci95"]
    return f"{summary['mean']:.1f} [{low:.1f}, {high:.1f}]"


def print_result(result: dict) -> None:
    rows = []
    for unit in result["units"]:
        if unit["status"] != "ok":
            rows.append((unit["unit_id"], "FAILED", unit["failure"].splitlines()[0][:70], "", ""))
            continue
        success = "-" if unit["success_rate"] is None else f"{100 * unit['success_rate']:.0f}%"
        iqm = f"{unit['summary']['iqm']:.1f}"
        rows.append((unit["unit_id"], format_summary(unit["summary"]), iqm, format_summary(unit["first_episode"]), success))
    print(format_table(["unit", "score (mean [95% CI])", "IQM", "online 1st episode", "success"], rows))
    aggregates = result["aggregates"]
    print()
    print(format_table(
        ["protocol", "score (mean [95% CI])", "IQM [95% CI]"],
        [(p, format_summary(s), "-" if s is None else f"{s['iqm']:.1f} [{s['iqm_ci95'][0]:.1f}, {s['iqm_ci95'][1]:.1f}]")
         for p, s in aggregates["protocols"].items()],
    ))
    print()
    print(format_table(["env / split", "drop offline-iid -> offline-ood"],
                       [(k, "-" if v is None else f"{v:.1f}") for k, v in aggregates["ood_drop"].items()]))


def _evaluate(args) -> int:
    import json

    from tqdm import tqdm

    from bitr_eval import evaluate, suite
    from bitr_eval.runner import planned_episodes

    try:
        agent_args = json.loads(args.agent_args) if args.agent_args else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--agent-args must be a JSON object: {err}") from err
    if not isinstance(agent_args, dict):
        raise ValueError("--agent-args must be a JSON object, e.g. '{\"temperature\": 0.5}'.")
    chosen = suite(args.suite)
    submission = {"name": args.name or args.agent, "agent": args.agent, "checkpoint": args.checkpoint,
                  "agent_args": agent_args}
    with tqdm(total=planned_episodes(chosen, args.envs, args.out), desc=f"{chosen.name} suite", unit="episode") as bar:
        result = evaluate(chosen, submission, args.out, jobs=args.jobs, executor=args.executor, progress=bar.update,
                          env_ids=args.envs)
    print(f"\n{submission['name']} on the {chosen.name} suite (normalised score: 0 = random, 100 = expert); "
          f"result file {args.out}\n")
    print_result(result)
    missing = len(chosen.units) - len(result["units"])
    if missing:
        print(f"\npartial: {missing} of the suite's {len(chosen.units)} units not run yet (the aggregates cover the "
              f"units run); the same command without --env runs them into {args.out}")
    return 0 if all(u["status"] == "ok" for u in result["units"]) else 1


def _leaderboard_add(args) -> int:
    from bitr_eval.leaderboard import add

    print(f"{args.result}: accepted, filed as {add(args.result, args.dir, args.replace)}")
    return 0


def _leaderboard_render(args) -> int:
    from bitr_eval.leaderboard import render

    for warning in render(args.dir):
        print(f"bitr: warning: {warning}", file=sys.stderr)
    print(f"wrote {os.path.join(args.dir, 'README.md')} and {os.path.join(args.dir, 'index.html')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitr", description="BITR-Bench: offline meta-RL under context shift.")
    groups = parser.add_subparsers(dest="group", required=True)
    add_commands(groups)
    evaluation = groups.add_parser("evaluate", help="run an evaluation suite on an agent")
    evaluation.add_argument("--agent", required=True, help="random, oracle, package.module:make or path/file.py:make")
    evaluation.add_argument("--checkpoint", help="passed to the agent's factory as checkpoint=")
    evaluation.add_argument("--agent-args", help="JSON object of keyword arguments for the factory")
    evaluation.add_argument("--name", help="submission name (default: the agent spec)")
    evaluation.add_argument("--suite", default="lite", help="tiny, lite or full (default: lite)")
    evaluation.add_argument("--env", action="append", dest="envs", metavar="ENV_ID",
                            help="run only this env's units (repeatable); the same --out later takes the rest")
    evaluation.add_argument("--out", required=True, help="result file; an existing one is resumed")
    evaluation.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="units run at once")
    evaluation.add_argument("--executor", default="local", choices=["local", "ray"])
    evaluation.set_defaults(func=_evaluate)

    board = groups.add_parser("leaderboard", help="file result files and render the leaderboard")
    commands = board.add_subparsers(dest="command", required=True)
    filing = commands.add_parser("add", help="check a result file and file it on the board")
    filing.add_argument("result", help="a result file of `bitr evaluate`")
    filing.add_argument("--dir", default="leaderboard", help="the leaderboard folder (default: leaderboard)")
    filing.add_argument("--replace", action="store_true", help="replace the submission's filed result of that name")
    filing.set_defaults(func=_leaderboard_add)
    rendering = commands.add_parser("render", help="write README.md and index.html from the filed results")
    rendering.add_argument("--dir", default="leaderboard", help="the leaderboard folder (default: leaderboard)")
    rendering.set_defaults(func=_leaderboard_render)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bitr_envs.datasets.loader import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DatasetError) as err:  # bad ids, splits, damaged data: the message says what to do
        print(f"bitr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
