"""Attack agents: submissions that try to cheat or to break the evaluator, for tests/test_attacks.py.

Each factory below is one attack, named as `tests/attacks/agents.py:<factory>`. They play like
the random agent and attack from `set_context` (offline units) or `__init__`. What an attack
found or managed is printed as one line `ATTACK <name> <json>` to stdout, which the evaluator
captures into the run's agent log (`<out>.logs/<unit>.log`): the tests read it from there.

Each attack, and the evaluator's answer:

- snoop: walk gc.get_objects() and every stack frame for an env, a task, the seeds; read the
  environment variables. Nothing to find: the env lives in another process.
- forge: send a fake `episode` report with a huge return, or an `ok` where an action is due.
  The unit fails; returns are counted by the evaluator.
- pickle_bomb: send a pickle whose unpickling runs a command (creates a marker file). Never
  unpickled: the unit fails as malformed.
- claim_privilege: set `privileged = True` on the instance, hoping for `set_task`. No task is
  sent: privilege is the factory's.
- double_fork: leave a double-forked, setsid grandchild that writes a file after the run.
  Killed with the unit (PID namespace or subreaper).
- vandal: write into the leaderboard folder and over the result file. Read-only (bwrap).
- read_datasets: read the Minari datasets (the task-labelled data). An empty tmpfs over the
  datasets root (bwrap).
- memory_bomb: allocate far more than the memory limit. MemoryError: the unit fails with a
  memory reason.
- cpu_bomb: spin for ever on the CPU. SIGXCPU at the CPU-time limit.
- giant_message: announce a 1 GiB message on the wire. Refused before it is read.
- chatty: print 20 MB to stdout. Kept to the log's size cap; the unit is fine.
- early_exit: `sys.exit(0)` in the middle of the unit. The unit fails: the agent process died.
- raise_in: raise in `__init__`, `reset`, `set_context`, `act` or `observe`. The unit fails
  naming the method.
- read_secrets: read root-only files (`/etc/shadow`, a 0600 file in its checkpoint). It runs
  as uid 65534 without capabilities, and /etc/shadow is not in its view (bwrap).
- connect_sockets: connect to Unix sockets of the host outside /tmp, in /tmp, and abstract
  ones. None is in its view or its network namespace (bwrap).
- fork_bomb: fork many children that each hold memory. At most `Suite.agent_processes`
  processes (bwrap, or a cgroup wherever one can be made).
- plant_link: plant a symbolic link where the evaluator writes the agent's log. The log
  replaces the link, never follows it; a logs folder that is a link is refused.
- escape_text: print terminal escapes and control characters, and raise with them. Printed
  and logged escaped.
- recognise: recognition instead of inference. Its checkpoint is a lookup table made from the
  public test datasets (which anyone can rebuild): the observations of each test task's
  context episodes, and the task's goal. A context row found in the table names the goal, and
  the agent drives straight to it; otherwise it acts at random. Scores like the oracle on the
  public split, like a random agent under --sealed.
- match_start: recognition from start states alone. Its checkpoint maps each first observation
  of the public evaluation (the public start seeds, replayed on every public test task) to its
  task. It reports the task it looked up at each episode's start: every one on the public
  split, none under --sealed (the key salts the start seeds and draws other tasks).
"""

import gc
import json
import os
import pickle
import socket
import sys
import time

import numpy as np

from bitr_eval.agents import RandomAgent


def report(name, found):
    print(f"ATTACK {name} {json.dumps(found, default=str)}", flush=True)


def wire_fd() -> int:
    return int(sys.argv[1])  # python -m bitr_eval.agent_host FD


class Snoop(RandomAgent):
    def set_context(self, transitions):
        import gymnasium

        found = {"envs": 0, "task_objects": 0, "frames_with_env": 0, "env_vars": sorted(os.environ),
                 "context_keys": sorted(transitions),
                 "processes": sorted(p for p in os.listdir("/proc") if p.isdigit())}
        for obj in gc.get_objects():
            try:
                if isinstance(obj, gymnasium.Env):
                    found["envs"] += 1
                elif hasattr(obj, "task_id") or hasattr(obj, "split_tasks") and hasattr(obj, "tasks"):
                    found["task_objects"] += 1
            except Exception:
                pass
        for frame in sys._current_frames().values():
            while frame is not None:
                if any(isinstance(v, gymnasium.Env) for v in list(frame.f_locals.values())):
                    found["frames_with_env"] += 1
                frame = frame.f_back
        report("snoop", found)


class Forge(RandomAgent):
    def __init__(self, how="episode", **kwargs):
        super().__init__(**kwargs)
        self.how, self.offline = how, False

    def set_context(self, transitions):
        self.offline = True

    def act(self, obs):
        if self.offline:
            from bitr_eval.wire import encode

            fd = wire_fd()
            if self.how == "episode":  # a report of the old worker protocol, with a fake return
                os.write(fd, encode("episode", task=0, seed=0, episode=0, phase="score", length=1, success=True,
                                    **{"return": 1e9}))
            else:  # "ok" where the action is due
                os.write(fd, encode("ok"))
            time.sleep(30)
        return super().act(obs)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class PickleBomb(RandomAgent):
    def __init__(self, marker, framed=False, **kwargs):
        super().__init__(**kwargs)
        self.marker, self.framed = marker, framed

    def set_context(self, transitions):
        payload = pickle.dumps(_Payload(self.marker))
        if self.framed:  # a well-formed frame whose header is the pickle
            import struct

            payload = struct.pack("<II", len(payload), 0) + payload
        os.write(wire_fd(), payload)
        time.sleep(30)


class ClaimPrivilege(RandomAgent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.privileged = True  # on the instance: the evaluator must ignore it

    def set_task(self, features):
        report("claim_privilege", {"task": np.asarray(features).tolist()})

    def set_context(self, transitions):
        report("claim_privilege", {"privileged": self.privileged})


class DoubleFork(RandomAgent):
    def __init__(self, target, marker, **kwargs):
        super().__init__(**kwargs)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sh", ["sh", "-c", f"sleep 4; echo pwned > {target}", marker])
            os._exit(0)
        os.wait()


class Vandal(RandomAgent):
    def __init__(self, targets, **kwargs):
        super().__init__(**kwargs)
        outcomes = {}
        for target in targets:
            try:
                with open(target, "a") as f:
                    f.write("vandalised")
                outcomes[target] = "written"
            except OSError as err:
                outcomes[target] = f"refused: {err.strerror}"
        report("vandal", outcomes)


class ReadDatasets(RandomAgent):
    def __init__(self, roots, **kwargs):
        super().__init__(**kwargs)
        found = []
        for root in roots + [os.path.expanduser("~/.minari")]:
            for folder, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        with open(path, "rb") as f:
                            f.read(16)
                        found.append(path)
                    except OSError:
                        pass
        report("read_datasets", {"read": found})


class MemoryBomb(RandomAgent):
    def __init__(self, gib=2, **kwargs):
        super().__init__(**kwargs)
        self.gib = gib

    def set_context(self, transitions):
        self.hoard = np.ones(int(self.gib * 2**30 // 8))


class CpuBomb(RandomAgent):
    def set_context(self, transitions):
        while True:
            pass


class GiantMessage(RandomAgent):
    def set_context(self, transitions):
        import struct

        os.write(wire_fd(), struct.pack("<II", 100, 2**30) + b"{" * 100)
        time.sleep(30)


class Chatty(RandomAgent):
    def set_context(self, transitions):
        line = "blah " * 20 + "\n"
        sys.stdout.write(line * (20_000_000 // len(line)))
        sys.stdout.flush()


class EarlyExit(RandomAgent):
    def set_context(self, transitions):
        sys.exit(0)


class RaiseIn(RandomAgent):
    def __init__(self, where, **kwargs):
        if where == "__init__":
            raise RuntimeError("boom in __init__")
        super().__init__(**kwargs)
        self.where = where

    def _maybe(self, method):
        if method == self.where:
            raise RuntimeError(f"boom in {method}")

    def reset(self):
        self._maybe("reset")

    def set_context(self, transitions):
        self._maybe("set_context")

    def act(self, obs):
        self._maybe("act")
        return super().act(obs)

    def observe(self, *transition):
        self._maybe("observe")


class ReadSecrets(RandomAgent):
    def __init__(self, paths, strict=False, **kwargs):
        super().__init__(**kwargs)
        found = {"uid": os.getuid(), "euid": os.geteuid(), "prefix": sys.prefix, "read": {}}
        with open("/proc/self/status") as f:
            found["capabilities"] = [line.split()[1] for line in f if line.startswith("CapEff")][0]
        checkpoint = kwargs["checkpoint"]
        weights = [os.path.join(checkpoint, name) for name in sorted(os.listdir(checkpoint))] if checkpoint else []
        for path in paths + weights:
            try:
                with open(path, "rb") as f:
                    f.read(16)
                found["read"][path] = "read"
            except OSError as err:
                if strict:  # as an agent that needs the file would
                    raise
                found["read"][path] = f"refused: {err.strerror}"
        report("read_secrets", found)


class ConnectSockets(RandomAgent):
    def __init__(self, paths, **kwargs):
        super().__init__(**kwargs)
        outcomes = {}
        for path in paths:  # "@name": an abstract socket
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                client.connect("\0" + path[1:] if path.startswith("@") else path)
                outcomes[path] = "connected"
            except OSError as err:
                outcomes[path] = f"refused: {err.strerror}"
            finally:
                client.close()
        report("connect_sockets", outcomes)


class ForkBomb(RandomAgent):
    def __init__(self, children, mib, **kwargs):
        super().__init__(**kwargs)
        read, write = os.pipe()
        found = {"forked": 0, "refused": None, "holding": 0}
        for _ in range(children):
            try:
                pid = os.fork()
            except OSError as err:
                found["refused"] = err.strerror
                break
            if pid == 0:
                try:
                    hoard = np.ones(mib * 2**20, np.uint8)  # every page touched
                    os.write(write, hoard[:1].tobytes())
                    time.sleep(600)
                finally:
                    os._exit(0)
            found["forked"] += 1
        os.close(write)
        os.set_blocking(read, False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and found["holding"] < found["forked"]:
            try:
                found["holding"] += len(os.read(read, 1024))
            except BlockingIOError:
                time.sleep(0.05)
        report("fork_bomb", found)


class PlantLink(RandomAgent):
    def __init__(self, link, target, **kwargs):
        super().__init__(**kwargs)
        try:
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
            outcome = "planted"
        except OSError as err:
            outcome = f"refused: {err.strerror}"
        report("plant_link", outcome)


class Recognise(RandomAgent):
    def __init__(self, env_id, observation_space, action_space, checkpoint=None):
        super().__init__(env_id, observation_space, action_space)
        with open(checkpoint) as f:
            table = json.load(f)
        self.goal_of = {tuple(np.round(row, 9)): np.array(goal) for row, goal in table}
        self.goal = None

    def set_context(self, transitions):
        found = [self.goal_of.get(tuple(np.round(row, 9))) for row in transitions["observations"]]
        self.goal = next((goal for goal in found if goal is not None), None)
        report("recognise", self.goal is not None)

    def act(self, obs):
        if self.goal is None:
            return self.action_space.sample()
        return np.clip(self.goal - obs, self.action_space.low, self.action_space.high)


class MatchStart(RandomAgent):
    def __init__(self, env_id, observation_space, action_space, checkpoint=None):
        super().__init__(env_id, observation_space, action_space)
        with open(checkpoint) as f:
            self.task_of = {tuple(np.round(obs, 9)): task for obs, task in json.load(f)}
        self.starting = True

    def reset(self):
        self.starting = True

    def act(self, obs):
        if self.starting:
            report("match_start", self.task_of.get(tuple(np.round(obs, 9))))
            self.starting = False
        return super().act(obs)

    def observe(self, obs, action, reward, next_obs, terminated, truncated):
        self.starting = terminated or truncated


class EscapeText(RandomAgent):
    def set_context(self, transitions):
        print("\x1b]0;pwned\x07\x1b[2J\x1b[31mlog line\r", flush=True)
        raise RuntimeError("\x1b[2J\x1b[1;31mall good\x1b[0m\r\u202eevil\x9b")


snoop, forge, pickle_bomb, claim_privilege, double_fork = Snoop, Forge, PickleBomb, ClaimPrivilege, DoubleFork
vandal, read_datasets, memory_bomb, cpu_bomb, giant_message = Vandal, ReadDatasets, MemoryBomb, CpuBomb, GiantMessage
chatty, early_exit, raise_in = Chatty, EarlyExit, RaiseIn
recognise, match_start = Recognise, MatchStart
read_secrets, connect_sockets, fork_bomb, plant_link, escape_text = (ReadSecrets, ConnectSockets, ForkBomb, PlantLink,
                                                                       EscapeText)


def declared_privileged(**kwargs):
    """Not an attack: a factory function that declares itself privileged (like the oracle).
    The evaluator tells it the task and records its result as privileged, never ranked."""
    from bitr_eval.agents import OracleAgent

    return OracleAgent(**kwargs)


declared_privileged.privileged = True
