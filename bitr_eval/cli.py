"""The `bitr` command: `envs` and `datasets` (from `bitr_envs.cli`), `evaluate` and `leaderboard`.

    bitr evaluate --agent SPEC     run an evaluation suite (see bitr_eval)
    bitr leaderboard add RUN.json [RUN2.json ...] --name NAME
                                   check result files (training runs of one agent) and file them
                                   as one entry under leaderboard/results/
    bitr leaderboard render        write leaderboard/README.md, index.html and plots/<suite>.svg
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bitr_envs.cli import add_commands, format_table
from bitr_eval.suites import SUITES
from bitr_eval.text import printable


def format_summary(summary) -> str:
    """'mean [low, high]' of a summary record, or '-' when there is none."""
    if summary is None:
        return "-"
    low, high = summary["mean_ci95"]
    return f"{summary['mean']:.1f} [{low:.1f}, {high:.1f}]"


def print_result(result: dict) -> None:
    rows = []
    for unit in result["units"]:
        if unit["status"] != "ok":  # the failure may quote the agent: escaped
            rows.append((unit["unit_id"], "FAILED", printable(unit["failure"]).splitlines()[0][:70], "", ""))
            continue
        success = "-" if unit["success_rate"] is None else f"{100 * unit['success_rate']:.0f}%"
        iqm = f"{unit['summary']['iqm']:.1f}"
        rows.append((unit["unit_id"], format_summary(unit["summary"]), iqm, format_summary(unit["first_episode"]),
                     success))
    print(format_table(["unit", "score (mean [95% CI])", "IQM", "online 1st episode", "success"], rows))
    aggregates = result["aggregates"]
    played = {unit["protocol"] for unit in result["units"]}  # the suite's protocols, not every base one
    for tasks, key in (("test tasks", "protocols"), ("ood tasks", "ood_tasks")):
        if key not in aggregates:
            continue
        print()
        print(format_table(
            ["protocol", f"{tasks}: mean [95% CI]", "IQM [95% CI]"],
            [(p, format_summary(s),
              "-" if s is None else f"{s['iqm']:.1f} [{s['iqm_ci95'][0]:.1f}, {s['iqm_ci95'][1]:.1f}]")
             for p, s in aggregates[key].items() if p in played],
        ))
    drops = (aggregates.get("context_drops")
             or {k: {"offline-ood": v} for k, v in aggregates.get("ood_drop", {}).items()})
    shifted = list(dict.fromkeys(p for d in drops.values() for p in d))
    if shifted:
        print()
        print(format_table(["env / split", *(f"drop offline-iid -> {p}" for p in shifted)],
                           [(k, *("-" if d.get(p) is None else f"{d[p]:.1f}" for p in shifted))
                            for k, d in drops.items()]))


def _evaluate(args) -> int:
    import json

    from tqdm import tqdm

    from bitr_eval import evaluate, suite
    from bitr_eval.runner import planned_episodes
    from bitr_eval.sandbox import ISOLATION_CHOICE, isolation_level, isolation_notice
    from bitr_eval.sealed import read_key

    try:
        agent_args = json.loads(args.agent_args) if args.agent_args else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--agent-args must be a JSON object: {err}") from err
    if not isinstance(agent_args, dict):
        raise ValueError("--agent-args must be a JSON object, e.g. '{\"temperature\": 0.5}'.")
    chosen = suite(args.suite)
    seal = read_key(args.sealed) if args.sealed else None
    if args.require_sandbox or seal is not None:
        os.environ[ISOLATION_CHOICE] = "bwrap"  # here, and in every unit's worker: no fallback anywhere
    print(isolation_notice(isolation_level()), flush=True)  # before any unit; an error when required and missing
    submission = {"name": args.name or args.agent, "agent": args.agent, "checkpoint": args.checkpoint,
                  "agent_args": agent_args}
    bar = None

    def progress(n: int) -> None:  # the bar appears with the first episode, never before an early error
        nonlocal bar
        if bar is None:
            bar = tqdm(total=planned_episodes(chosen, args.envs, args.out), desc=f"{chosen.name} suite", unit="episode")
        bar.update(n)

    try:
        result = evaluate(chosen, submission, args.out, jobs=args.jobs, executor=args.executor, progress=progress,
                          env_ids=args.envs, seal=seal)
    finally:
        if bar is not None:
            bar.close()
    sealed = f", sealed (key sha256 {seal.key_sha256[:12]}...)" if seal else ""
    print(f"\n{submission['name']} on the {chosen.name} suite{sealed} (normalised score: 0 = random, 100 = expert); "
          f"result file {args.out}\n")
    print_result(result)
    missing = len(chosen.units) - len(result["units"])
    if missing:
        print(f"\npartial: {missing} of the suite's {len(chosen.units)} units not run yet (the aggregates cover the "
              f"units run); the same command without --env runs them into {args.out}")
    return 0 if all(u["status"] == "ok" for u in result["units"]) else 1


def _leaderboard_add(args) -> int:
    from bitr_eval.filing import add
    from bitr_eval.sealed import read_key

    seal = read_key(args.sealed) if args.sealed else None
    target = add(args.results, args.dir, name=args.name, replace=args.replace, seal=seal)
    runs = len(args.results)
    print(f"{', '.join(args.results)}: accepted, filed as {target} ({runs} run{'s' if runs > 1 else ''})")
    return 0


def _leaderboard_render(args) -> int:
    from bitr_eval.board_markdown import ResultsPageError
    from bitr_eval.leaderboard import render, repository_results_page
    from bitr_eval.results import ResultError

    results_page = args.results_page
    if results_page is None:  # the repository's results page, when this is the repository's board
        page = repository_results_page(args.dir)
        results_page = None if page is None else os.path.relpath(page)
    try:
        warnings = render(args.dir, results_page)
    except (ResultsPageError, ResultError) as err:
        print(f"bitr leaderboard render: {err}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"bitr: warning: {warning}", file=sys.stderr)
    written = [os.path.join(args.dir, name) for name in ("README.md", "index.html", "plots/")]
    print("wrote " + ", ".join(written + ([results_page] if results_page else [])))
    return 0


def _leaderboard_verify(args) -> int:
    from bitr_eval.replay import verify_entry
    from bitr_eval.sealed import read_key

    units = None if args.units == "all" else int(args.units)
    seal = read_key(args.sealed) if args.sealed else None
    verification = verify_entry(args.entry, units, args.tolerance, args.jobs, seal=seal)
    for outcome in verification["units"]:
        verdict = "matched" if outcome["matched"] else f"DIFFERS: {outcome['first_difference']}"
        print(f"{outcome['run']} {outcome['unit']}: {verdict}")
    print(f"wrote {os.path.join(args.entry, 'verification.json')}; `bitr leaderboard render` shows it")
    return 0 if verification["matched"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitr", description="BITR-Bench: offline meta-RL under context shift.")
    groups = parser.add_subparsers(dest="group", required=True)
    add_commands(groups)
    evaluation = groups.add_parser("evaluate", help="run an evaluation suite on an agent")
    evaluation.add_argument("--agent", required=True, help="random, oracle, package.module:make or path/file.py:make")
    evaluation.add_argument("--checkpoint", help="passed to the agent's factory as checkpoint=")
    evaluation.add_argument("--agent-args", help="JSON object of keyword arguments for the factory")
    evaluation.add_argument("--name", help="submission name (default: the agent spec)")
    evaluation.add_argument("--suite", default="lite", choices=list(SUITES), help="the suite (default: lite)")
    evaluation.add_argument("--env", action="append", dest="envs", metavar="ENV_ID",
                            help="run only this env's units (repeatable); the same --out later takes the rest")
    evaluation.add_argument("--out", required=True, help="result file; an existing one is resumed")
    evaluation.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="units run at once")
    evaluation.add_argument("--executor", default="local", choices=["local", "ray"])
    evaluation.add_argument("--sealed", metavar="KEYFILE",
                            help="score on tasks, context data and start states drawn from this secret key (a "
                            "maintainer's file of 16+ random bytes) instead of the public test split; needs "
                            "bubblewrap; "
                            "the result records the key's sha256 only")
    evaluation.add_argument("--require-sandbox", action="store_true",
                            help="stop before any unit unless bubblewrap can sandbox the agent (no plain-process "
                            "fallback)")
    evaluation.set_defaults(func=_evaluate)

    board = groups.add_parser("leaderboard", help="file result files and render the leaderboard")
    commands = board.add_subparsers(dest="command", required=True)
    filing = commands.add_parser("add", help="check result files and file them on the board as one entry")
    filing.add_argument("results", nargs="+", metavar="RESULT",
                        help="result files of `bitr evaluate`: the training runs (checkpoints) of one agent")
    filing.add_argument("--name", help="the entry's name (default: the runs' submission name)")
    filing.add_argument("--dir", default="leaderboard",
                        help="the leaderboard folder (default: leaderboard; a folder of your own, such as "
                        "runs/board, leaves the repository's board as it is)")
    filing.add_argument("--replace", action="store_true", help="replace the filed entry of that name")
    filing.add_argument("--sealed", metavar="KEYFILE", help="the key sealed results were scored with: their data is "
                        "checked against the key's datasets (built where missing)")
    filing.set_defaults(func=_leaderboard_add)
    rendering = commands.add_parser("render", help="write README.md, index.html and plots/<suite>.svg from the "
                                    "filed results (and, for the repository's board, docs/results.md's tables)")
    rendering.add_argument("--dir", default="leaderboard", help="the leaderboard folder (default: leaderboard)")
    rendering.add_argument("--results-page", default=None, metavar="PAGE",
                           help="also refresh the tables block of this Markdown page (default: docs/results.md "
                           "when the folder is the repository's leaderboard/; none for a board of your own)")
    rendering.set_defaults(func=_leaderboard_render)
    replaying = commands.add_parser("verify", help="play a filed entry's units again and compare the returns")
    replaying.add_argument("entry", help="an entry folder, e.g. leaderboard/results/quick/bitr-quick")
    replaying.add_argument("--units", default="1", help="units per run to play again, or 'all' (default: 1)")
    replaying.add_argument("--tolerance", type=float, default=0.0,
                           help="largest relative return difference accepted (default 0: the same machine)")
    replaying.add_argument("--jobs", type=int, default=1, help="units played at once")
    replaying.add_argument("--sealed", metavar="KEYFILE", help="the key a sealed entry was scored with")
    replaying.set_defaults(func=_leaderboard_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bitr_envs.datasets.loader import DatasetError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error argparse has printed: its exit code
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return args.func(args)
    except (ValueError, DatasetError) as err:  # bad ids, splits, damaged data: the message says what to do
        print(f"bitr: error: {printable(str(err))}", file=sys.stderr)  # it may quote a submission
        return 2


if __name__ == "__main__":
    sys.exit(main())
