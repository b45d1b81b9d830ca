"""`bitr-agent sweep`: train and evaluate a grid of methods x families x seeds, resumably.

    bitr-agent sweep --algos bitr,focal --envs bitr/PointRobotSparse-v0,bitr/CheetahVel-v0 --seeds 0,1,2 \
        --profile lite --suite lite --out runs/sweep --jobs 2

Every run is one subprocess:

    bitr-agent train --algo A --dataset bitr/<env-slug>/train-iid-<profile>-v0 --profile P --seed S \
        --out <out>/<A>/seed<S>/<env-slug>

and, once every family of (A, S) is trained,

    bitr evaluate --agent bitr_agent:load --checkpoint <out>/<A>/seed<S> --suite <suite> \
        --out <out>/<A>/seed<S>/result-<suite>.json --name "<A> seed <S>"

(`bitr_agent:load_privileged` for a privileged method, the task-given ceiling). With `--sealed
KEYFILE` the evaluation is sealed (`--sealed KEYFILE --require-sandbox`) and its result file is
`result-<suite>-<first 8 hex digits of the key's sha256>.json`: a run has one result per key.

At most `jobs` runs go at once; an evaluation starts as soon as its families are trained, before
any training still waiting. A trained run (its `agent.pt` exists) and an evaluated one (its
result file holds every unit, all finished) are skipped, so the same command continues a sweep
that was stopped. A failed run is reported (its log is `train.log` beside its output, or
`evaluate-<suite>[-<key>].log` beside its result) and the sweep goes on; the evaluation of an
(algorithm, seed) with a failed family is not run. After each training the sweep writes
`training.json` (wall time, algorithm, seed, profile, dataset) beside `agent.pt` unless the
trainer wrote one: `bitr evaluate` copies it into the result's submission.

`--executor ray` runs the same subprocesses as Ray tasks (one CPU each), so the outcome is the
same as with the local pool. `--train-command` / `--eval-command` replace the commands with
templates whose words may hold {algo} {seed} {env} {env_slug} {dataset} {profile} {out}
(train) and {algo} {seed} {checkpoint} {suite} {result} {name} {profile} {sealed} (evaluate; {sealed} is
the KEYFILE of --sealed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bitr_agent.agent import AGENT_FILE
from bitr_agent.checkpoint import TRAINING_FILE

TRAIN_TEMPLATE = ("bitr-agent train --algo {algo} --dataset {dataset} --profile {profile} --seed {seed} "
                  "--out {out}")


def result_file(suite_name: str, key_sha256: str | None = None) -> str:
    """One result file per suite and sealing key (None: the public tasks): the same checkpoints
    are evaluated on several suites, and sealed under several keys."""
    return f"result-{suite_name}" + (f"-{key_sha256[:8]}" if key_sha256 else "") + ".json"


def factory_for(algo: str) -> str:
    """The agent factory that loads a method's checkpoints: a privileged method's (told the task)
    loads only through `bitr_agent:load_privileged`."""
    from bitr_agent.methods import method

    return "bitr_agent:load_privileged" if getattr(method(algo).agent_class, "privileged", False) else "bitr_agent:load"


def run_name(algo: str, seed: int) -> str:
    """The submission name of a method's training run (one entry on the board gathers its seeds)."""
    return f"{algo} seed {seed}"


def evaluate_command(checkpoint, suite_name: str, result, name: str, factory: str = "bitr_agent:load",
                     envs=(), sealed: str | None = None) -> list[str]:
    """`bitr evaluate` of a training run's agents (`checkpoint`: a run folder, or a folder of one
    per family); `envs`: only their units; `sealed`: the sealing key's file. The sweep runs it;
    `bitr-agent train` suggests it."""
    return ["bitr", "evaluate", "--agent", factory, "--checkpoint", str(checkpoint), "--suite", suite_name,
            "--out", str(result), "--name", name, *[word for env in envs for word in ("--env", env)],
            *(["--sealed", str(sealed), "--require-sandbox"] if sealed else [])]


@dataclass
class Run:
    kind: str  # "train" or "evaluate"
    algo: str
    seed: int
    command: list[str]
    folder: Path  # where its output and log go
    env: Optional[str] = None  # train only
    fields: dict = field(default_factory=dict)  # train only: what training.json records
    result: Optional[Path] = None  # evaluate only: its result file, in `folder`
    key_sha256: Optional[str] = None  # evaluate only: the sealing key's, None for the public tasks

    @property
    def log(self) -> Path:
        if self.kind == "train":
            return self.folder / "train.log"
        return self.folder / ("evaluate" + self.result.stem.removeprefix("result") + ".log")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.algo} seed {self.seed}" + (f" {self.env}" if self.env else "")


def _fill(template: str, values: dict) -> list[str]:
    """The template's words with the placeholders filled in, each word staying one argument."""
    try:
        return [word.format(**values) for word in shlex.split(template)]
    except KeyError as err:
        raise ValueError(f"unknown placeholder {err} in command template {template!r}") from None


def trained(run: Run) -> bool:
    return (run.folder / AGENT_FILE).exists()


def evaluated(result_path: Path, suite_name: str, key_sha256: str | None = None) -> bool:
    """The result file exists, was scored on the tasks of `key_sha256` (None: the public ones) and
    holds every unit of the suite (or of the envs run), all finished."""
    from bitr_eval.results import ResultError, load_result, sealing_key

    if not result_path.exists():
        return False
    try:
        result = load_result(result_path)
    except ResultError:
        return False
    if sealing_key(result) != key_sha256:
        return False
    wanted = set(result["suite"]["units"])
    done = {u["unit_id"] for u in result["units"] if u["status"] == "ok"}
    return result["suite"]["name"] == suite_name and bool(done) and (wanted <= done or _env_subset_done(result, done))


def _env_subset_done(result: dict, done: set) -> bool:
    """A run with --env: finished when every unit of the envs it ran is finished."""
    envs = {u["env_id"] for u in result["units"]}
    from bitr_eval.suites import suite

    return all(u.unit_id in done for u in suite(result["suite"]["name"]).units if u.env_id in envs)


def plan(algos, envs, seeds, profile: str, suite_name: str, out: str | Path,
         train_template: str = TRAIN_TEMPLATE, eval_template: Optional[str] = None, sealed: Optional[str] = None
         ) -> tuple[dict[tuple[str, int], list[Run]], dict[tuple[str, int], Run]]:
    """The sweep's runs: per (algo, seed) its training runs (one per family) and its evaluation;
    `sealed`: the sealing key's file, for sealed evaluations."""
    from bitr_envs.datasets.ids import env_slug
    from bitr_eval.sealed import read_key
    from bitr_eval.suites import dataset_id, suite

    key_sha256 = read_key(sealed).key_sha256 if sealed else None

    chosen = suite(suite_name)
    suite_envs = list(dict.fromkeys(u.env_id for u in chosen.units))
    unknown = [e for e in envs if e not in suite_envs]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the {suite_name} suite, whose envs are {', '.join(suite_envs)}")
    out = Path(out)  # as given: result files record the checkpoint path, and `verify` replays from it
    trains, evals = {}, {}
    for algo in algos:
        for seed in seeds:
            checkpoint = out / algo / f"seed{seed}"
            runs = []
            for env in envs:
                folder = checkpoint / env_slug(env)
                dataset = dataset_id(env, "train", "iid", profile)
                values = {"algo": algo, "seed": seed, "env": env, "env_slug": env_slug(env), "dataset": dataset,
                          "profile": profile, "out": str(folder)}
                runs.append(Run("train", algo, seed, _fill(train_template, values), folder, env,
                                {"algo": algo, "seed": seed, "profile": profile, "dataset": dataset}))
            trains[(algo, seed)] = runs
            result = checkpoint / result_file(suite_name, key_sha256)
            name = run_name(algo, seed)
            if eval_template is None:  # with --env: only the trained families; the rest stays to run
                command = evaluate_command(checkpoint, suite_name, result, name, factory_for(algo),
                                           envs=envs if set(envs) != set(suite_envs) else (),
                                           sealed=sealed)
            else:
                command = _fill(eval_template, {"algo": algo, "seed": seed, "checkpoint": str(checkpoint),
                                                "suite": suite_name, "result": str(result), "name": name,
                                                "profile": profile, "sealed": sealed})
            evals[(algo, seed)] = Run("evaluate", algo, seed, command, checkpoint, result=result, key_sha256=key_sha256)
    return trains, evals


def run_command(command: list[str], log: str, environ: Optional[dict] = None, cwd: Optional[str] = None
                ) -> tuple[int, float]:
    """Run one command in `cwd` with its output in `log` (relative to `cwd`); (exit code, wall
    seconds). Also a Ray task, whose worker may start elsewhere: hence the explicit `cwd`."""
    if cwd is not None:
        log = str(Path(cwd) / log)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "ab") as f:
        f.write(f"$ {shlex.join(command)}\n".encode())
        f.flush()
        try:
            code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=environ, cwd=cwd).returncode
        except OSError as err:  # no such program
            f.write(f"cannot run: {err}\n".encode())
            code = 127
    return code, time.monotonic() - started


class _LocalPool:
    def __init__(self, jobs: int):
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs))

    def submit(self, run: Run):
        return self._pool.submit(run_command, run.command, str(run.log), dict(os.environ), os.getcwd())

    def wait_one(self, handles):
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        handle = next(iter(done))
        return handle, handle.result()

    def close(self):
        self._pool.shutdown(wait=True)


class _RayPool:
    def __init__(self, jobs: int):
        from bitr_envs.ray_cluster import start_ray

        self._ray = start_ray(max(1, jobs))
        self._remote = self._ray.remote(num_cpus=1)(run_command)

    def submit(self, run: Run):
        return self._remote.remote(run.command, str(run.log), dict(os.environ), os.getcwd())

    def wait_one(self, handles):
        ready, _ = self._ray.wait(list(handles), num_returns=1)
        return ready[0], self._ray.get(ready[0])

    def close(self):
        pass


def sweep(algos, envs, seeds, profile: str = "lite", suite_name: str = "lite", out: str | Path = "runs/sweep",
          jobs: int = 1, executor: str = "local", dry_run: bool = False, train_template: str = TRAIN_TEMPLATE,
          eval_template: Optional[str] = None, sealed: Optional[str] = None, echo=print) -> dict[str, list[str]]:
    """Run (or continue) the sweep; return the labels of the runs by outcome: 'done' (skipped,
    finished before), 'ok', 'failed', 'blocked' (an evaluation whose training failed). `sealed`:
    the sealing key's file, for sealed evaluations."""
    trains, evals = plan(algos, envs, seeds, profile, suite_name, out, train_template, eval_template, sealed)
    outcome: dict[str, list[str]] = {"done": [], "ok": [], "failed": [], "blocked": []}
    if dry_run:
        for key, runs in trains.items():
            for run in runs:
                echo(("# done: " if trained(run) else "") + shlex.join(run.command))
            run = evals[key]
            done = evaluated(run.result, suite_name, run.key_sha256)
            echo(("# done: " if done else "") + shlex.join(run.command))
        return outcome
    if executor not in ("local", "ray"):
        raise ValueError(f"Unknown executor {executor!r}: use 'local' or 'ray'.")
    pool = _LocalPool(jobs) if executor == "local" else _RayPool(jobs)
    pending: dict = {}  # handle -> run
    queue: deque = deque()  # runs not started yet; evaluations go first, so results land early
    waiting = {key: len(runs) for key, runs in trains.items()}  # families of (algo, seed) still training
    failed_keys: set = set()

    def submit(run: Run) -> None:
        if run.kind == "evaluate":  # ahead of the trainings, behind the evaluations queued before it
            queue.insert(sum(r.kind == "evaluate" for r in queue), run)
        else:
            queue.append(run)

    def start_queued() -> None:
        while queue and len(pending) < max(1, jobs):
            run = queue.popleft()
            echo(f"start  {run.label}")
            pending[pool.submit(run)] = run

    def family_finished(key) -> None:
        waiting[key] -= 1
        if waiting[key] == 0:
            run = evals[key]
            if key in failed_keys:
                outcome["blocked"].append(run.label)
                echo(f"skip   {run.label}: a family failed to train")
            elif evaluated(run.result, suite_name, run.key_sha256):
                outcome["done"].append(run.label)
                echo(f"done   {run.label} (finished before)")
            else:
                submit(run)

    try:
        for key, runs in trains.items():
            for run in runs:
                if trained(run):
                    outcome["done"].append(run.label)
                    echo(f"done   {run.label} (finished before)")
                    family_finished(key)
                else:
                    submit(run)
        start_queued()
        while pending:
            handle, (code, seconds) = pool.wait_one(list(pending))
            run = pending.pop(handle)
            ok = code == 0 and (run.kind != "train" or trained(run))
            if ok and run.kind == "evaluate":
                ok = evaluated(run.result, suite_name, run.key_sha256)
            if ok:
                outcome["ok"].append(run.label)
                echo(f"ok     {run.label} ({seconds:.0f} s)")
            else:
                outcome["failed"].append(run.label)
                echo(f"FAILED {run.label} (exit code {code}); log: {run.log}")
            if run.kind == "train":
                if ok:
                    _write_training(run, seconds)
                else:
                    failed_keys.add((run.algo, run.seed))
                family_finished((run.algo, run.seed))
            start_queued()
    finally:
        pool.close()
    return outcome


def _write_training(run: Run, seconds: float) -> None:
    path = run.folder / TRAINING_FILE
    if not path.exists():  # the trainer's own record wins
        from bitr_envs.files import write_json_atomic

        write_json_atomic(path, {"wall_seconds": round(seconds, 1), **run.fields})


def _csv(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bitr_eval.suites import SUITES

    parser.add_argument("--algos", required=True, type=_csv, help="comma-separated: bitr,focal,...")
    parser.add_argument("--envs", required=True, type=_csv, help="comma-separated env ids of the suite")
    parser.add_argument("--seeds", required=True, type=lambda t: [int(s) for s in _csv(t)], help="e.g. 0,1,2")
    parser.add_argument("--profile", default="lite", help="training dataset profile (default: lite)")
    parser.add_argument("--suite", default="lite", choices=list(SUITES), help="evaluation suite (default: lite)")
    parser.add_argument("--out", required=True, help="sweep folder: <out>/<algo>/seed<S>/...")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default: 1)")
    parser.add_argument("--executor", default="local", choices=["local", "ray"],
                        help="where the runs go: a local pool of processes, or Ray tasks (one CPU each)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    parser.add_argument("--train-command", default=TRAIN_TEMPLATE,
                        help="template of the training command, whose words may hold {algo} {seed} {env} "
                             "{env_slug} {dataset} {profile} {out} (default: %(default)s)")
    parser.add_argument("--eval-command", default=None,
                        help="template of the evaluation command, whose words may hold {algo} {seed} {checkpoint} "
                             "{suite} {result} {name} {profile} {sealed} (default: bitr evaluate --agent "
                             "bitr_agent:load --checkpoint {checkpoint} --suite {suite} --out {result} --name {name}, "
                             "bitr_agent:load_privileged for a privileged method, --env for each family when --envs "
                             "are not all the suite's, and --sealed {sealed} --require-sandbox with --sealed)")
    parser.add_argument("--sealed", metavar="KEYFILE", default=None,
                        help="score the evaluations sealed, on the tasks drawn from this key (bitr evaluate "
                             "--sealed); a run's result file then names the key: result-<suite>-<key>.json")


def main_from_args(args) -> int:
    outcome = sweep(args.algos, args.envs, args.seeds, args.profile, args.suite, args.out, args.jobs,
                    args.executor, args.dry_run, args.train_command, args.eval_command, args.sealed)
    if args.dry_run:
        return 0
    print(f"\nsweep: {len(outcome['ok'])} run, {len(outcome['done'])} finished before, "
          f"{len(outcome['failed'])} failed, {len(outcome['blocked'])} evaluations not run")
    for label in outcome["failed"] + outcome["blocked"]:
        print(f"  not finished: {label}", file=sys.stderr)
    return 1 if outcome["failed"] or outcome["blocked"] else 0
