"""One cgroup v2 group per agent: a single memory limit and process limit for the agent and
every process it starts, where the evaluator can make such a group.

That takes a cgroup v2 hierarchy at /sys/fs/cgroup with the memory and pids controllers, and
the right to make groups in it and move processes into them: root on a host, rarely inside a
container. `problem()` says why not; the sandbox then falls back to per-process limits.

    group = AgentGroup.make(memory_bytes, processes)
    subprocess.Popen(..., preexec_fn=group.join)    # the agent, and everything it starts
    ...
    group.kill()                                    # every process in it, however it was started
    group.remove()

The groups live in /sys/fs/cgroup/bitr-agents/, each with memory.max (no swap) and pids.max.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path("/sys/fs/cgroup")
PARENT = ROOT / "bitr-agents"
CONTROLLERS = ("memory", "pids")


class AgentGroup:
    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def make(cls, memory_bytes: int, processes: int) -> AgentGroup:
        """A new group with these limits (an OSError where none can be made)."""
        controllers = (ROOT / "cgroup.controllers").read_text().split()
        missing = [c for c in CONTROLLERS if c not in controllers]
        if missing:
            raise OSError(f"the cgroup v2 hierarchy at {ROOT} has no {' or '.join(missing)} controller")
        PARENT.mkdir(exist_ok=True)
        for folder in (ROOT, PARENT):  # the controllers handed down to the groups below
            enabled = (folder / "cgroup.subtree_control").read_text().split()
            if any(c not in enabled for c in CONTROLLERS):
                (folder / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
        group = cls(Path(tempfile.mkdtemp(prefix=f"agent-{os.getpid()}-", dir=PARENT)))
        try:
            (group.path / "memory.max").write_text(str(memory_bytes))
            if (group.path / "memory.swap.max").exists():
                (group.path / "memory.swap.max").write_text("0")
            (group.path / "pids.max").write_text(str(processes))
        except OSError:
            group.remove()
            raise
        return group

    def join(self) -> None:
        """Move the calling process into the group (the agent's child, before it execs)."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]

    def kill(self, wait_s: float = 10.0) -> None:
        """SIGKILL every process in the group, until none is left (or `wait_s` has passed)."""
        deadline = time.monotonic() + wait_s
        while self.pids() and time.monotonic() < deadline:
            if (self.path / "cgroup.kill").exists():  # Linux 5.14+: all at once, forks included
                (self.path / "cgroup.kill").write_text("1")
            else:
                for pid in self.pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(0.02)

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # a process not reaped yet: the empty folder stays, harmless


@functools.cache
def problem() -> Optional[str]:
    """Why no agent group can be made here, or None: checked once per process by making one
    and moving a process into it."""
    try:
        group = AgentGroup.make(memory_bytes=2**30, processes=16)
    except OSError as err:
        return "no cgroup v2 here: " + (f"{err.filename}: {err.strerror}" if err.filename else str(err))
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=group.join, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        return f"no process can be moved into a cgroup v2 group here: {err}"
    finally:
        group.kill()
        group.remove()
    return None
