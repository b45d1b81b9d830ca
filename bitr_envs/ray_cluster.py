"""Ray, started the same way by every command that takes `--executor ray` (dataset builds, the
evaluator, the sweep)."""

from __future__ import annotations

import os
from typing import Optional


def start_ray(cpus: Optional[int]):
    """Import Ray and connect it: to the cluster at $RAY_ADDRESS if set (it has its own CPUs), else
    to a local instance with `cpus` CPUs (None: every core). Returns the `ray` module."""
    try:
        import ray
    except ImportError as err:
        raise ValueError("--executor ray needs Ray: pip install 'bitr-bench[ray]'") from err
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return ray
