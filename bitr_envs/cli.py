"""The `bitr envs` and `bitr datasets` commands (the `bitr` command itself is `bitr_eval.cli`).

    bitr envs list                 every registered id: splits, task counts, horizon, reward
    bitr envs show ID              the task table of each split of ID
    bitr envs rollout ID           random-policy returns per task (a quick check of an env)
    bitr datasets list             every dataset the recipe cards define, and which are built
    bitr datasets build ID...      collect datasets into the local Minari root (globs allowed;
                                   --jobs N / --executor ray collect shards in parallel, resumably)
    bitr datasets info ID          what a local dataset holds
    bitr datasets verify ID...     checksums (recorded and pinned) and a full read of local datasets
    bitr datasets pin ID...        record local datasets' checksums as the benchmark's (maintainers)
    bitr datasets download ID...   from a remote (--remote file:///mirror or hf://org)
    bitr datasets publish ID...    to a remote
"""


from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

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


def family_table(markdown: bool = False) -> str:
    """Every registered id with its task parameter, splits, horizon and reward (README's table)."""
    from bitr_envs.registry import ENVS

    header = ["id", "task parameter", f"splits: {'/'.join(('train', 'test', 'ood'))} tasks", "horizon", "reward"]
    rows = []
    for e in ENVS.values():
        counts = "/".join(str(e.num_tasks(s)) for s in e.env_class.splits())
        rows.append([f"`{e.id}`" if markdown else e.id, e.task_parameter, counts, e.horizon, e.reward])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])
    return format_table(header, [[str(c).replace("\\|", "|") for c in row] for row in rows])


def _envs_list(args) -> int:
    print(family_table(args.markdown))
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


def _dataset_ids(patterns: Sequence[str]) -> list[str]:
    """Expand shell-style patterns against the ids the recipe cards define."""
    import fnmatch

    from bitr_envs.datasets import all_recipes

    ids = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            parts = pattern.split("/")
            envs = parts[1] if len(parts) == 3 else "*"  # bitr/<env>/<name>: that family's recipes only
            matches = fnmatch.filter([r.dataset_id for r in all_recipes(envs)], pattern)
        else:
            matches = [pattern]
        if not matches:
            raise ValueError(f"No dataset id matches {pattern!r}; `bitr datasets list` shows them all.")
        ids.extend(m for m in matches if m not in ids)
    return ids


def _datasets_list(args) -> int:
    from bitr_envs.datasets import all_recipes
    from bitr_envs.datasets.loader import read_metadata
    from bitr_envs.datasets.storage import exists

    rows = []
    for r in all_recipes():
        if (args.profile and r.profile != args.profile) or (args.env and r.env_id != args.env):
            continue
        row = [r.dataset_id, r.episodes_per_task]
        if exists(r.dataset_id):
            m = read_metadata(r.dataset_id)
            row += [m["total_steps"], f"{m['dataset_size']:.1f}", f"{m['ref_min_score']:.1f}",
                    f"{m['ref_max_score']:.1f}"]
        else:
            row += ["not built", "", "", ""]
        rows.append(row)
    header = ["dataset id", "episodes/task", "transitions", "MB", "random return", "expert return"]
    print(format_table(header, rows))
    return 0


def _datasets_build(args) -> int:
    from bitr_envs.datasets import build
    from bitr_envs.datasets.shards import ShardExecutor
    from bitr_envs.datasets.storage import exists

    todo = []
    for dataset_id in _dataset_ids(args.ids):
        if exists(dataset_id) and not args.force:
            print(f"{dataset_id}: already built (--force rebuilds it)")
        else:
            todo.append(dataset_id)
    if not todo:
        return 0
    with ShardExecutor(args.jobs, args.executor) as runner:  # one pool (or Ray session) for all
        for dataset_id in todo:
            with _build_bars(dataset_id) as bars:
                # not forced, a dataset another job built since the list was made is kept
                path = build(dataset_id, num_envs=args.num_envs, progress=bars, runner=runner, on_wait=bars.say,
                             force=args.force)
            print(f"{dataset_id}: built at {path}")
    return 0


def _build_bars(dataset_id: str):
    """A `BuildProgress` that draws a tqdm bar for each part of the build (the reference runs,
    the dataset's steps, the episodes written), from its first progress on, and prints its stages."""
    from tqdm import tqdm

    from bitr_envs.datasets.shards import DATA, REFERENCE_RUNS, WRITING, BuildProgress

    labels = {REFERENCE_RUNS: ("reference runs", "step"), DATA: ("collecting", "step"), WRITING: ("writing", "episode")}

    class BuildBars(BuildProgress):
        def __init__(self):
            self.totals: dict[str, int] = {}
            self.bars: dict[str, tqdm] = {}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            for bar in self.bars.values():
                bar.close()

        def planned(self, part: str, total: int) -> None:
            self.totals[part] = total
            if part in self.bars:
                self.bars[part].total = total
                self.bars[part].refresh()

        def advanced(self, part: str, amount: int) -> None:
            if part not in self.bars:  # drawn from its first progress: its rate and time are its own
                label, unit = labels[part]
                self.bars[part] = tqdm(total=self.totals[part], desc=f"{dataset_id} {label}", unit=unit,
                                       unit_scale=unit == "step", position=len(self.bars), file=sys.stderr)
            self.bars[part].update(amount)

        def stage(self, message: str) -> None:
            self.say(message)

        def say(self, message: str) -> None:
            tqdm.write(f"{dataset_id}: {message}", file=sys.stderr)

    return BuildBars()


def _datasets_info(args) -> int:
    from bitr_envs.datasets import load
    from bitr_envs.datasets.loader import read_metadata
    from bitr_envs.datasets.storage import dataset_path

    metadata = read_metadata(args.dataset_id)
    data = load(args.dataset_id)
    print(f"{args.dataset_id}  ({dataset_path(args.dataset_id)})")
    print(metadata["description"])
    for key in ("total_episodes", "total_steps", "dataset_size", "ref_min_score", "ref_max_score",
                "minari_version", "bitr_recipe_sha256"):
        print(f"  {key}: {metadata.get(key)}")
    returns: dict[int, list[float]] = {}
    for _, label, episode_return in data.episode_returns():
        returns.setdefault(label, []).append(episode_return)
    rows = [
        (label, data.behaviour_names[label], sum(int((t.behaviours == label).sum()) for t in data.tasks),
         len(r), f"{np.mean(r):.1f}", f"{np.std(r):.1f}")
        for label, r in sorted(returns.items())
    ]
    print(format_table(["label", "behaviour", "transitions", "episodes", "mean return", "std"], rows))
    return 0


def _datasets_verify(args) -> int:
    from bitr_envs.datasets import verify

    failed = 0
    for dataset_id in _dataset_ids(args.ids):
        problems = verify(dataset_id)
        print(f"{dataset_id}: {'OK' if not problems else 'FAILED'}")
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    return 1 if failed else 0


def _datasets_pin(args) -> int:
    """Record local datasets' checksums as the benchmark's (a maintainer's step, after a build)."""
    import json

    from bitr_envs.datasets import verify
    from bitr_envs.datasets.recipes import recipes_dir
    from bitr_envs.datasets.storage import PINS_FILE, file_hashes, pins

    pinned = pins()
    for dataset_id in _dataset_ids(args.ids):
        problems = verify(dataset_id)
        if problems and not (len(problems) == 1 and "not the benchmark's dataset" in problems[0]):
            raise ValueError(f"Not pinning {dataset_id}: " + " ".join(problems))
        pinned[dataset_id] = file_hashes(dataset_id)
        print(f"{dataset_id}: pinned data {pinned[dataset_id]['data_sha256'][:12]}, "
              f"content {pinned[dataset_id]['content_sha256'][:12]}")
    path = recipes_dir() / PINS_FILE
    path.write_text(json.dumps(dict(sorted(pinned.items())), indent=1) + "\n")
    print(f"wrote {path}")
    return 0


def _datasets_download(args) -> int:
    from bitr_envs.datasets.remote import download

    for dataset_id in _dataset_ids(args.ids):
        print(f"{dataset_id}: downloaded to {download(dataset_id, args.remote, args.force)}")
    return 0


def _datasets_publish(args) -> int:
    from bitr_envs.datasets.remote import publish

    for dataset_id in _dataset_ids(args.ids):
        publish(dataset_id, args.remote, args.token)
        print(f"{dataset_id}: published")
    return 0


def add_commands(groups) -> None:
    """Add `envs` and `datasets` to the `bitr` command's subparsers."""

    envs = groups.add_parser("envs", help="the registered meta-task environments")
    commands = envs.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every id with its task parameter, task counts, horizon and reward")
    listing.add_argument("--markdown", action="store_true", help="as the Markdown table of README.md")
    listing.set_defaults(func=_envs_list)
    show = commands.add_parser("show", help="the task table of each split of one id")
    show.add_argument("env_id")
    show.set_defaults(func=_envs_show)
    rollout = commands.add_parser("rollout", help="random-policy returns on each task of a split")
    rollout.add_argument("env_id")
    rollout.add_argument("--split", default="test")
    rollout.add_argument("--episodes", type=int, default=1)
    rollout.add_argument("--seed", type=int, default=0)
    rollout.set_defaults(func=_envs_rollout)

    data = groups.add_parser("datasets", help="the offline datasets (Minari)")
    commands = data.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every dataset the recipe cards define")
    listing.add_argument("--profile", help="only this size profile (tiny, lite, full)")
    listing.add_argument("--env", help="only this env id")
    listing.set_defaults(func=_datasets_list)
    build = commands.add_parser("build", help="collect datasets into the local Minari root")
    build.add_argument("ids", nargs="+", help="dataset ids or patterns, e.g. 'bitr/point-robot-sparse/*-lite-v0'")
    build.add_argument("--force", action="store_true", help="rebuild datasets that exist")
    build.add_argument("--num-envs", type=int, default=16, help="envs stepped together (does not change the data)")
    build.add_argument("--jobs", type=int, default=1,
                       help="shards collected at once: local processes, or the CPUs of a local Ray instance "
                            "(does not change the data)")
    build.add_argument("--executor", default="local", choices=["local", "ray"],
                       help="local processes, or Ray tasks (on $RAY_ADDRESS's cluster if set)")
    build.set_defaults(func=_datasets_build)
    info = commands.add_parser("info", help="what a local dataset holds")
    info.add_argument("dataset_id")
    info.set_defaults(func=_datasets_info)
    verify = commands.add_parser("verify", help="checksum and read local datasets")
    verify.add_argument("ids", nargs="+")
    verify.set_defaults(func=_datasets_verify)
    pin = commands.add_parser("pin", help="record local datasets' checksums as the benchmark's (maintainers)")
    pin.add_argument("ids", nargs="+")
    pin.set_defaults(func=_datasets_pin)
    download = commands.add_parser("download", help="download datasets from a remote")
    download.add_argument("ids", nargs="+")
    download.add_argument("--remote", help="file:///path/to/mirror or hf://<org> (default: $MINARI_REMOTE)")
    download.add_argument("--force", action="store_true", help="replace a local copy")
    download.set_defaults(func=_datasets_download)
    publish = commands.add_parser("publish", help="upload verified local datasets to a remote")
    publish.add_argument("ids", nargs="+")
    publish.add_argument("--remote", help="file:///path/to/mirror or hf://<org> (default: $MINARI_REMOTE)")
    publish.add_argument("--token", help="the remote's token (Hugging Face)")
    publish.set_defaults(func=_datasets_publish)
