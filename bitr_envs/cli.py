"""The `bitr` command.

    bitr envs list                 every registered id: splits, task counts, horizon, reward
    bitr envs show ID              the task table of each split of ID
    bitr envs rollout ID           random-policy returns per task (a quick check of an env)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Mapping, Sequence

import numpy as np


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_value(value: Any) -> str:
    """A task parameter in a table cell: scalars to 3 decimals, arrays shortened."""
    if np.isscalar(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    array = np.asarray(value)
    if array.size <= 3:
        return "[" + ", ".join(f"{v:.3f}" for v in array.ravel()) + "]"
    return f"{array.size} values in [{array.min():.3f}, {array.max():.3f}]"


def _envs_list(args) -> int:
    from bitr_envs.registry import ENVS

    rows = []
    for e in ENVS.values():
        cls = e.env_class
        splits = cls.splits()
        counts = "/".join(str(len(cls.split_tasks(s))) for s in splits)
        rows.append((e.id, "/".join(splits), counts, e.horizon, "sparse" if e.sparse else "dense"))
    print(format_table(["id", "splits", "tasks", "horizon", "reward"], rows))
    return 0


def _envs_show(args) -> int:
    from bitr_envs.registry import entry

    cls = entry(args.env_id).env_class
    for split in cls.splits():
        tasks: Sequence[Mapping[str, Any]] = cls.split_tasks(split)
        keys = list(tasks[0])
        rows = [[i] + [format_value(t[k]) for k in keys] for i, t in enumerate(tasks)]
        print(f"\n{args.env_id}  split={split}  ({len(tasks)} tasks)")
        print(format_table(["task"] + keys, rows))
    return 0


def _envs_rollout(args) -> int:
    import gymnasium as gym

    import bitr_envs  # noqa: F401  (registers the ids)

    env = gym.make(args.env_id, split=args.split)
    env.action_space.seed(args.seed)
    rows = []
    for task in range(len(env.unwrapped.tasks)):
        returns = []
        for episode in range(args.episodes):
            env.reset(seed=args.seed + episode, options={"task": task})
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += reward
                done = terminated or truncated
            returns.append(total)
        rows.append((task, f"{np.mean(returns):.2f}", f"{np.std(returns):.2f}"))
    print(f"{args.env_id} split={args.split}: random-policy return over {args.episodes} episode(s)")
    print(format_table(["task", "mean return", "std"], rows))
    env.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitr", description="BITR-Bench: offline meta-RL under context shift.")
    groups = parser.add_subparsers(dest="group", required=True)

    envs = groups.add_parser("envs", help="the registered meta-task environments")
    commands = envs.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every id with its splits, task counts, horizon and reward").set_defaults(func=_envs_list)
    show = commands.add_parser("show", help="the task table of each split of one id")
    show.add_argument("env_id")
    show.set_defaults(func=_envs_show)
    rollout = commands.add_parser("rollout", help="random-policy returns on each task of a split")
    rollout.add_argument("env_id")
    rollout.add_argument("--split", default="test")
    rollout.add_argument("--episodes", type=int, default=1)
    rollout.add_argument("--seed", type=int, default=0)
    rollout.set_defaults(func=_envs_rollout)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad ids, splits, ...: the message says what to do
        print(f"bitr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
