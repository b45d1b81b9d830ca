"""BITR's training throughput against the bare compute of the same networks (run: pytest benchmarks/).

Target: at least 0.8x. The baseline runs the very same update on batches sampled once
in advance, so the ratio is what sampling and bookkeeping cost on top of the networks' work.
"""

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bitr_agent.config import from_profile  # noqa: E402
from bitr_agent.data import Sampler, TaskArrays  # noqa: E402
from bitr_agent.methods import BITR  # noqa: E402
from bitr_envs import datasets  # noqa: E402

TRAIN = "bitr/point-robot-sparse/train-iid-tiny-v0"
CFG = from_profile("quick", dataset=TRAIN)


class Presampled(Sampler):
    """The same batches every time, drawn once: a sampler that costs nothing."""

    def __init__(self, sampler: Sampler):
        super().__init__(sampler.tasks, sampler.cfg, sampler.rng)
        self._tasks = sampler.task_ids()
        self._contexts = sampler.contexts(self._tasks)
        self._windows = {n: sampler.windows(self._tasks, n) for n in (CFG.windows_per_task, CFG.imagined_per_task)}
        self._transitions = sampler.transitions(self._tasks, CFG.batch_per_task)

    def task_ids(self):
        return self._tasks

    def contexts(self, task_ids, different_from=None):
        return self._contexts

    def windows(self, task_ids, n):
        return self._windows[n]

    def transitions(self, task_ids, n):
        return self._transitions


@pytest.fixture(scope="module")
def samplers(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        datasets.build(TRAIN)
        data = datasets.load(TRAIN)
    torch.set_num_threads(CFG.threads)
    obs = np.concatenate([t.observations for t in data.tasks])
    scale = np.array([0.1, 0.1], np.float32)
    tasks = [TaskArrays(t, obs.mean(0), obs.std(0) + 1e-3, scale, CFG.history) for t in data.tasks]
    real = Sampler(tasks, CFG, np.random.default_rng(0))
    return real, Presampled(real), len(data.behaviour_names), len(data.tasks)


def rate(update, sampler, n):
    update(sampler)  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        update(sampler)
    return n / (time.perf_counter() - start)


@pytest.mark.parametrize("phase", ["representation", "policy"])
def test_training_throughput_against_bare_compute(benchmark, samplers, phase):
    real, bare, n_behaviours, n_tasks = samplers
    learner = BITR(CFG, 2, 2, n_behaviours, n_tasks)
    update = learner.update_representation if phase == "representation" else learner.update_policy
    n = 40 if phase == "representation" else 20
    ours = min(rate(update, real, n) for _ in range(2))
    baseline = min(rate(update, bare, n) for _ in range(2))
    ratio = ours / baseline
    tokens = CFG.task_batch * CFG.windows_per_task * CFG.history
    benchmark.extra_info.update({"updates_per_s": round(ours, 1), "bare_updates_per_s": round(baseline, 1),
                                 "ratio": round(ratio, 3)})
    if phase == "representation":
        benchmark.extra_info["world_model_tokens_per_s"] = int(ours * tokens)
    benchmark.pedantic(update, args=(real,), rounds=5)
    print(f"\n{phase}: {ours:.1f} updates/s, bare {baseline:.1f}/s, ratio {ratio:.2f}"
          + (f", {ours * tokens:,.0f} world-model tokens/s" if phase == "representation" else ""))
    assert ratio >= 0.8
