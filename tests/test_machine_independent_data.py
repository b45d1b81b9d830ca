"""A dataset's bytes do not depend on the CPU: pinned checksums mean something.

OpenBLAS picks its matrix-product kernel per CPU (or by OPENBLAS_CORETYPE); a float32 policy
computed through it rounds differently per kernel, and MuJoCo turns a last-bit difference in one
action into another episode. The behaviour policies therefore compute without BLAS; this builds
the same small Cheetah-Vel datasets (the training pool's, and the other-task pool's, whose
policy is given another task) under several kernels, each in a fresh process, and compares.

NumPy picks a SIMD kernel per CPU for its transcendental ufuncs (power, exp, log, sin, ...), and
its AVX-512 kernels differ from the others in the last bit: Hopper- and Walker-Param's masses,
drawn as 1.5 ** u with NumPy, differed between an AVX-512 Intel machine and an AMD one, and so
did every dataset of those families. The task tables are now computed with the math module
(`bitr_envs.core.libm`); their digests are pinned here, so any machine that draws other tasks
fails this test before it builds other data.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bitr_envs.datasets.recipes import recipes_dir
from bitr_envs.registry import ENVS

CARD = """
envs = ["bitr/CheetahVel-v0"]
seed = 0
expert = "expert"
reference_episodes = 1
[behaviours]
random = {{ policy = "random" }}
expert = {{ policy = "snapshot:{policy}", noise = 0.1 }}
held-out = {{ policy = "snapshot:{policy}", noise = 0.3 }}
other-expert = {{ policy = "snapshot:{policy}", noise = 0.1, pursue = "another-task" }}
[pools]
iid = {{ random = 0.5, expert = 0.5 }}
ood = {{ held-out = 1.0 }}
other = {{ other-expert = 1.0 }}
[profiles]
mini = {{ episodes_per_task = 2 }}
"""

BUILD = """
import json
from bitr_envs import datasets
from bitr_envs.datasets.storage import file_hashes
ids = ["bitr/cheetah-vel/test-iid-mini-v0", "bitr/cheetah-vel/test-other-mini-v0"]
for dataset_id in ids:
    datasets.build(dataset_id)
print(json.dumps({dataset_id: file_hashes(dataset_id) for dataset_id in ids}))
"""

# Kernels every x86-64 CPU can run (a newer one than the CPU has would crash OpenBLAS).
CORE_TYPES = ("Prescott", "Nehalem", "Haswell" if "avx2" in open("/proc/cpuinfo").read() else "Sandybridge")


def build_under(core_type, tmp_path):
    root = tmp_path / core_type
    env = {**os.environ, "OPENBLAS_CORETYPE": core_type, "MINARI_DATASETS_PATH": str(root / "minari"),
           "BITR_RECIPES": str(tmp_path / "cards")}
    done = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_mujoco_dataset_has_one_checksum_under_every_blas_kernel(tmp_path):
    (tmp_path / "cards").mkdir()
    policy = recipes_dir() / "policies" / "cheetah-vel" / "step_100000.npz"
    (tmp_path / "cards" / "mini.toml").write_text(CARD.format(policy=policy))
    hashes = {core: build_under(core, tmp_path) for core in CORE_TYPES}
    for dataset_id in ("bitr/cheetah-vel/test-iid-mini-v0", "bitr/cheetah-vel/test-other-mini-v0"):
        assert len({h[dataset_id]["data_sha256"] for h in hashes.values()}) == 1, hashes
        assert len({h[dataset_id]["content_sha256"] for h in hashes.values()}) == 1, hashes


# sha256 of each family's public task tables and of one sealed draw (parameters and task
# features, float64), measured on an AMD EPYC machine without AVX-512 (2026-12-04)
TASK_TABLE_DIGESTS = {
    "bitr/AntDir-v0": "136c70671a62a6068b3afa0f80fce24c91465889d59a2cc92866de12436ae7a1",
    "bitr/CheetahDir-v0": "6308ba7447cc80953e402685570a8d4c3902ee2f97556219965ef220a49148b4",
    "bitr/CheetahVel-v0": "b5eeaa2c1b44a48835e028962bc7e858fa78da5fe1263e7ff1699067948162cb",
    "bitr/CheetahVelSparse-v0": "b5eeaa2c1b44a48835e028962bc7e858fa78da5fe1263e7ff1699067948162cb",
    "bitr/HopperParam-v0": "7ba6976cce82599256a4d569ba720bdf9ea5d8f7bccde59a5152ba60e2ca4f91",
    "bitr/HopperParamSparse-v0": "7ba6976cce82599256a4d569ba720bdf9ea5d8f7bccde59a5152ba60e2ca4f91",
    "bitr/PointRobot-v0": "3c4285e2930261c3e421fb4056a1a3cb5beb9f5bf1ac74dcf16d0b0b956d36f1",
    "bitr/PointRobotSparse-v0": "3c4285e2930261c3e421fb4056a1a3cb5beb9f5bf1ac74dcf16d0b0b956d36f1",
    "bitr/Push-v0": "67ae7c6e34ee80868766fea90b8351284dc9456ce8245e1959149af35462df73",
    "bitr/PushSparse-v0": "67ae7c6e34ee80868766fea90b8351284dc9456ce8245e1959149af35462df73",
    "bitr/Reach-v0": "985d5af3888e4ed2e11493b42f2da5cf19e2e830d54d5da0549f33199aa17db5",
    "bitr/ReachSparse-v0": "985d5af3888e4ed2e11493b42f2da5cf19e2e830d54d5da0549f33199aa17db5",
    "bitr/WalkerParam-v0": "0e4384b69d01d4a921df867521033894f3fc0c7b44899d1c800f0862b922dd1d",
    "bitr/WalkerParamSparse-v0": "0e4384b69d01d4a921df867521033894f3fc0c7b44899d1c800f0862b922dd1d",
}


def task_table_digest(env_id: str) -> str:
    cls = ENVS[env_id].env_class
    digest = hashlib.sha256()
    for table in (cls.task_table(), {split: cls.sealed_tasks(split, 12345) for split in cls.splits()}):
        for split in sorted(table):
            for task in table[split]:
                for key in sorted(task):
                    digest.update(key.encode())
                    digest.update(np.ascontiguousarray(np.asarray(task[key], np.float64)).tobytes())
                digest.update(np.asarray(cls.task_features(task), np.float64).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("env_id", sorted(TASK_TABLE_DIGESTS))
def test_every_machine_draws_the_same_tasks_to_the_last_bit(env_id):
    assert set(TASK_TABLE_DIGESTS) == set(ENVS)  # a new family gets its digest here
    assert task_table_digest(env_id) == TASK_TABLE_DIGESTS[env_id]
