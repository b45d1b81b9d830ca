"""Running a suite: one supervised worker process per unit, the agent sandboxed apart from it,
results written as units finish.

    result = evaluate(suite("lite"), {"name": "my-agent", "agent": "my_pkg.agent:make"}, "runs/my-agent.json")

- Each unit's worker process (trusted) holds the env, the task, the seeds and the context data;
  it steps the env and counts the returns. The agent runs in its own sandboxed process
  (`bitr_eval.sandbox`: bubblewrap where it works, else a plain limited process) and only
  ever sees plain arrays over a non-pickle wire (`bitr_eval.wire`). The isolation level is
  recorded per unit.
- A unit whose agent raises, returns a bad action, sends anything but the expected reply,
  takes longer than the suite's time limit for one episode, runs out of memory or CPU time, or
  kills its process is recorded as failed with the reason; the run goes on.
- Whether the submission is privileged (told the task) is decided once, before the units
  run, from its factory (`bitr_eval.agents.is_privileged`: read in a sandboxed probe, the
  evaluator never imports a submission's code).
- After every unit the result file is rewritten atomically; running the same command again
  skips the units already in it, so a killed evaluation loses at most the units in flight.
  The agent's stdout and stderr (size-capped, control characters escaped) go to `<out>.logs/`.
- Units run on a local pool of worker processes (`jobs`), or on a Ray cluster
  (`executor="ray"`, extra `ray`); every unit draws its randomness from its own seeds, so the
  results are the same either way.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from bitr_envs.datasets.ids import env_slug
from bitr_envs.datasets.storage import minari_root_at
from bitr_envs.files import write_json_atomic
from bitr_eval.agents import is_privileged
from bitr_eval.results import SCHEMA_VERSION, load_result, read_training
from bitr_eval.sandbox import LOG_LIMIT, Limits, isolation_level, refuse_linked_folder, save_log
from bitr_eval.scoring import aggregates, unit_record
from bitr_eval.sealed import Seal, prepare
from bitr_eval.suites import Suite, Unit
from bitr_eval.text import printable
from bitr_eval.worker import STARTUP_LIMIT_S, check_paths, check_play_order, play_order, worker_main

SUPERVISOR_SLACK_S = 60.0  # the worker enforces the agent's limits; this only catches a stuck worker
MAX_REPORT = 64 * 1024 * 1024

Progress = Optional[Callable[[int], None]]  # called with 1 for every finished episode


def unit_episodes(unit: Unit, n_seeds: int) -> int:
    """How many episodes `unit` plays (every task x seed)."""
    from bitr_envs.registry import entry

    n_tasks = entry(unit.env_id).num_tasks(unit.split)
    return n_tasks * n_seeds * (unit.episodes + (unit.explore_episodes if unit.protocol == "online" else 0))


def unit_limits(suite: Suite, unit: Unit) -> Limits:
    """The agent process's memory, CPU-time and process limits for `unit` under `suite`."""
    cpu = suite.agent_cpu_seconds + suite.agent_cpu_seconds_per_episode * unit_episodes(unit, len(suite.seeds))
    return Limits(memory_bytes=suite.agent_memory_bytes, cpu_seconds=cpu, processes=suite.agent_processes)


def run_unit(unit: Unit, seeds, submission: dict, episode_time_limit_s: float, progress: Progress = None,
             isolation: Optional[str] = None, limits: Optional[Limits] = None,
             order: Optional[list[list[int]]] = None, sealing: Optional[dict] = None) -> dict:
    """Play one unit in a fresh worker process (the agent in its sandbox beside it) and return
    its result record, with the agent's captured output under "agent_log". `order`: the
    [task, seed] blocks to play, as a re-play follows a filed unit's; by default a secret one
    (`worker.play_order`). `sealing`: a sealed evaluation's task draw and start-state salt
    (`Seal.unit_sealing`), its datasets in the Minari root the caller has set."""
    from bitr_envs.registry import entry

    started = time.monotonic()
    isolation = isolation or isolation_level()
    limits = limits or Limits(memory_bytes=Suite.agent_memory_bytes, cpu_seconds=24 * 3600.0)
    n_tasks = len(entry(unit.env_id).env_class.split_tasks(unit.split))
    order = play_order(n_tasks, seeds) if order is None else check_play_order(order, n_tasks, seeds)
    context = multiprocessing.get_context("spawn")  # no state inherited from the evaluator
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=worker_main, daemon=True,
                              args=(sender, unit, tuple(seeds), submission, isolation, limits, episode_time_limit_s,
                                    order, sealing))
    process.start()
    sender.close()
    episodes, failure, logs = [], None, []
    limit = STARTUP_LIMIT_S + SUPERVISOR_SLACK_S
    try:
        while True:
            if not receiver.poll(limit):
                failure = f"evaluator hung: its unit worker reported nothing within {limit:.0f} s"
                break
            try:
                kind, payload = json.loads(receiver.recv_bytes(MAX_REPORT))
            except EOFError:
                process.join(5)
                failure = f"evaluator error: the unit's worker process died (exit code {process.exitcode})"
                break
            if kind == "episode":
                episodes.append(payload)
                if progress is not None:
                    progress(1)
            elif kind == "starting":  # a task's fresh agent process: it may take the startup limit
                limit = STARTUP_LIMIT_S + SUPERVISOR_SLACK_S
            elif kind == "ready":
                limit = episode_time_limit_s + SUPERVISOR_SLACK_S
                isolation = payload
            elif kind == "log":
                if payload:
                    logs.append(payload)
            elif kind == "failed":
                failure = payload
                break
            elif kind == "done":
                break
            # "loaded" (the worker read a task's context data): nothing to record; it restarts the wait
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
    episodes.sort(key=lambda e: (e["task"], e["seed"], e["episode"]))  # the file does not tell the play order
    record = unit_record(unit, seeds, episodes, failure)
    record["isolation"] = isolation
    record["play_order"] = order
    record["wall_seconds"] = round(time.monotonic() - started, 3)
    record["agent_log"] = _capped("".join(logs))
    return record


def _capped(log: str) -> str:
    """A unit's agent output (one log per task's process) within the sandbox's LOG_LIMIT."""
    data = log.encode()
    if len(data) <= LOG_LIMIT:
        return log
    return data[:LOG_LIMIT].decode(errors="ignore") + f"\n[{len(data) - LOG_LIMIT} more bytes of output not kept]\n"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "schema": str(SCHEMA_VERSION)}
    for package in ("bitr-bench", "gymnasium", "mujoco", "metaworld", "minari", "numpy", "torch"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _hardware() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count() or 1, "system": platform.system()}


def _run_units(units, suite: Suite, submission, jobs: int, executor: str, on_done, progress, isolation: str,
               seal: Optional[Seal] = None):
    all_limits = [unit_limits(suite, u) for u in units]  # before any unit starts: an error here loses no episodes
    if executor == "local":
        lock = threading.Lock()

        def safe_progress(n):
            if progress is not None:
                with lock:
                    progress(n)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(run_unit, u, suite.seeds, submission, suite.episode_time_limit_s, safe_progress,
                                   isolation, limits, None, seal and seal.unit_sealing(u.env_id))
                       for u, limits in zip(units, all_limits)]
            for future in futures:
                record = future.result()
                with lock:
                    on_done(record)
    elif executor == "ray":
        from bitr_envs.ray_cluster import start_ray

        ray = start_ray(jobs if jobs > 0 else None)
        remote = ray.remote(run_unit)
        # the isolation level is checked again on the node that runs the unit
        pending = {remote.remote(u, suite.seeds, submission, suite.episode_time_limit_s, None, None, limits): u
                   for u, limits in zip(units, all_limits)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            record = ray.get(ready[0])
            del pending[ready[0]]
            if progress:
                progress(len(record["episodes"]))
            on_done(record)
    else:
        raise ValueError(f"Unknown executor {executor!r}: use 'local' or 'ray'.")


def selected_units(suite: Suite, env_ids: Sequence[str] | None = None) -> list[Unit]:
    """The suite's units, or only those of `env_ids`: a suite can be run in pieces (one family
    at a time, into the same result file), but only a whole one goes on the leaderboard."""
    if not env_ids:
        return list(suite.units)
    suite_envs = list(dict.fromkeys(u.env_id for u in suite.units))
    unknown = [e for e in env_ids if e not in suite_envs]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the {suite.name} suite, whose envs are {', '.join(suite_envs)}.")
    return [u for u in suite.units if u.env_id in env_ids]


def evaluate(suite: Suite, submission: dict, out: str | Path, jobs: int = 1, executor: str = "local",
             progress: Progress = None, env_ids: Sequence[str] | None = None, seal: Optional[Seal] = None,
             echo=print) -> dict:
    """Run (or resume) `suite` (or only its units of `env_ids`) for `submission` and write the
    result file `out`; with `seal`, on the key's secret tasks, data and start states."""
    submission = {"checkpoint": None, "agent_args": {}, **submission}
    isolation = isolation_level()  # checked once for the run
    if seal is not None:
        if executor != "local":
            raise ValueError("a sealed evaluation runs with --executor local: its datasets are in this machine's cache")
        if isolation != "bwrap":
            raise ValueError("a sealed evaluation needs the bubblewrap sandbox (apt-get install bubblewrap): an agent "
                             "outside it could read the key's datasets")
    check_paths(submission, isolation)
    submission["privileged"] = is_privileged(submission, isolation)
    # how the checkpoint was trained, if it says: for the suite's families only
    training = read_training(submission["checkpoint"], {env_slug(u.env_id) for u in suite.units})
    if training is not None:
        submission["training"] = training
    out = Path(out)
    started_clock = time.monotonic()
    result = {
        "schema_version": SCHEMA_VERSION,
        "submission": submission,
        "suite": {"name": suite.name, "fingerprint": suite.fingerprint(), "seeds": list(suite.seeds),
                  "units": [u.unit_id for u in suite.units]},
        "versions": _versions(), "hardware": _hardware(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": 0.0, "units": [], "aggregates": {},
        "sealed": None if seal is None else {"key_sha256": seal.key_sha256},
    }
    previous_seconds = 0.0
    if out.exists():
        previous = load_result(out)
        same = (previous["submission"] == submission and previous["suite"]["fingerprint"] == suite.fingerprint()
                and previous.get("sealed") == result["sealed"])
        if not same:
            raise ValueError(f"{out} holds a run of another submission or suite: choose another --out.")
        result["units"] = [u for u in previous["units"] if u["status"] == "ok"]
        result["started"] = previous["started"]
        previous_seconds = previous["wall_seconds"]
    done_ids = {u["unit_id"] for u in result["units"]}
    todo = [u for u in selected_units(suite, env_ids) if u.unit_id not in done_ids]

    logs = out.parent / f"{out.name}.logs"
    refuse_linked_folder(logs)  # before any unit, not after the first

    def on_done(record):
        log = record.pop("agent_log", "")
        if log:  # for people to read: escaped, and never written through a link
            save_log(logs, record["unit_id"].replace("/", "__") + ".log", printable(log))
        result["units"].append(record)
        order = {u.unit_id: i for i, u in enumerate(suite.units)}
        result["units"].sort(key=lambda r: order[r["unit_id"]])
        result["aggregates"] = aggregates(result["units"])
        result["wall_seconds"] = round(previous_seconds + time.monotonic() - started_clock, 3)
        write_json_atomic(out, result)

    wanted = {d: u.env_id for u in todo for d in (u.context_dataset, u.reference_dataset) if d}
    if seal is not None:
        prepare(seal, wanted, jobs=max(1, jobs), echo=echo)
    with minari_root_at(seal.root) if seal is not None else contextlib.nullcontext():
        _check_datasets(dict.fromkeys(wanted), sealed=seal is not None)
        _run_units(todo, suite, submission, jobs, executor, on_done, progress, isolation, seal)
    result["aggregates"] = aggregates(result["units"])
    write_json_atomic(out, result)
    return result


def _check_datasets(dataset_ids, sealed: bool = False) -> None:
    """Refuse to start on missing datasets, or on any whose bytes are not the benchmark's (or,
    `sealed`, not built on a key's tasks: `sealed.prepare` checks which key)."""
    from bitr_envs.datasets import verify
    from bitr_envs.datasets.storage import exists

    missing = [d for d in dataset_ids if not exists(d)]
    if missing:
        raise ValueError(
            "The suite needs datasets that are not built: "
            + " ".join(missing)
            + ". Build them with `bitr datasets build " + " ".join(missing) + "`."
        )
    problems = [p for d in dataset_ids for p in verify(d, full_read=False, sealed=sealed)]
    if problems:
        raise ValueError("The suite's datasets failed their checks: " + " ".join(problems))


def planned_episodes(suite: Suite, env_ids: Sequence[str] | None = None, out: str | Path | None = None) -> int:
    """How many episodes the suite (or its units of `env_ids`) plays, for progress bars; with the
    result file `out` of a resumed run, only its units not finished yet."""
    finished = set()
    if out is not None and Path(out).exists():
        finished = {u["unit_id"] for u in load_result(out)["units"] if u["status"] == "ok"}
    return sum(unit_episodes(u, len(suite.seeds)) for u in selected_units(suite, env_ids) if u.unit_id not in finished)

