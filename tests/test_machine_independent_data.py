"""A dataset's bytes do not depend on the CPU's BLAS kernel: pinned checksums mean something.

OpenBLAS picks its matrix-product kernel per CPU (or by OPENBLAS_CORETYPE); a float32 policy
computed through it rounds differently per kernel, and MuJoCo turns a last-bit difference in one
action into another episode. The behaviour policies therefore compute without BLAS; this builds
the same small Cheetah-Vel datasets (the training pool's, and the other-task pool's, whose
policy is given another task) under several kernels, each in a fresh process, and compares.
"""

import json
import os
import subprocess
import sys

from bitr_envs.datasets.recipes import recipes_dir

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
