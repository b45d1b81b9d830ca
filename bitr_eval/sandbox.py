"""The agent's sandboxed process: how it is started, confined, limited and killed.

Two isolation levels, decided once per evaluation (`isolation_level`) and recorded per unit:

- `bwrap` (bubblewrap works here): the agent's view of the file system holds only what it
  needs, bound read-only at the same paths: /usr (and the /bin, /lib links), a few files of
  /etc (`SYSTEM_ETC`), the interpreter with its prefixes and import paths, the current folder,
  its checkpoint and its factory's folder, wherever they live (a folder under /tmp is bound
  on top of the private tmpfs there). Nothing else of the host is in it, so neither are the
  host's Unix sockets. An empty tmpfs covers the Minari datasets root where a bound folder
  holds it; private tmpfs /tmp and /dev/shm; its own /proc and a minimal /dev; its own PID,
  network, IPC and UTS namespaces; uid `AGENT_UID` without capabilities; a new session. When
  its first process ends or the evaluator kills it, the PID namespace dies with every process
  in it (`--die-with-parent` covers an evaluator that dies).
- `process` (no bubblewrap, or it cannot start): a plain child process in its own session,
  with the per-process limits below, a scrubbed environment, and a parent that is a child
  subreaper and kills every descendant at the end of the unit. The file system and the uid
  are the evaluator user's: see docs/evaluation.md for what this level does not cover.

Both: RLIMIT_AS (memory, per process), RLIMIT_CPU (CPU time; SIGXCPU, then SIGKILL),
RLIMIT_FSIZE, no core dumps, SIGKILL when the parent dies, stdout and stderr into a size-capped
log (not the wire), and an environment with nothing but PATH, HOME, locale, PYTHONPATH and
thread counts. The agent and all its children together get one memory limit and one limit of
`Limits.processes` processes and threads: a cgroup v2 group where the evaluator can make one
(`bitr_eval.cgroup`, either level); else, under bubblewrap, RLIMIT_NPROC only (which counts
whom is in docs/evaluation.md), and in the process fallback no process limit at all.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bitr_eval import cgroup
from bitr_eval.wire import FROM_AGENT, Channel

ISOLATION_CHOICE = "BITR_SANDBOX"  # auto (default): bwrap where it works, else process; or bwrap / process
LOG_LIMIT = 64 * 1024  # bytes of the agent's stdout + stderr kept
MAX_AGENT_MESSAGE = 1 << 20  # an action or an error text is far smaller
FILE_SIZE_LIMIT = 1 << 30
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
AGENT_UID = 65534  # "nobody": the agent's uid under bubblewrap
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # bound, or linked as on the host
# of /etc, what the dynamic linker, Python and common libraries read; not shadow, not ssh, not the rest
SYSTEM_ETC = ("alternatives", "group", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
              "passwd")


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu_seconds: float
    processes: int = 64  # processes and threads of the agent and its children (a cgroup's pids.max, or RLIMIT_NPROC)
    tmp_bytes: int = 512 * 1024 * 1024  # the private /tmp and /dev/shm (bwrap)


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process (so that it can kill them), and
    other processes of the same user cannot read its memory (not dumpable)."""
    _prctl(PR_SET_DUMPABLE, 0)
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def hidden_paths() -> list[str]:
    """What the agent must not read: the Minari datasets root (the context comes over the wire)."""
    from bitr_envs.datasets.collect import datasets_root

    paths = {str(Path(datasets_root()).resolve()), str((Path.home() / ".minari").resolve())}
    return sorted(p for p in paths if os.path.isdir(p))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def too_broad(path: str, folders: tuple[str, ...] = ()) -> Optional[str]:
    """The folder among /, /tmp, /root, /home, /etc, $HOME (and `folders`) that the resolved
    `path` is or holds, or None: such a folder is never bound whole."""
    candidates = {"/", "/tmp", "/root", "/home", "/etc", str(Path.home().resolve()), *folders}
    held = sorted((f for f in candidates if _under(f, path)), key=len)
    return held[0] if held else None


def refuse_broad(path: Optional[str], what: str) -> None:
    """A ValueError naming `what` (like `--checkpoint /tmp`) when `path` is a folder that is or
    holds /tmp, $HOME, the datasets or another `too_broad` folder: the sandbox would have to
    show it to the agent whole."""
    if not path or not os.path.isdir(path):
        return
    resolved = str(Path(path).resolve())
    held = too_broad(resolved, tuple(hidden_paths()))
    if held is not None:
        holds = "" if held == resolved else f", which holds {held}"
        raise ValueError(f"{what}: the sandbox binds this folder read-only into the agent's view, and so would show "
                         f"it all of {resolved}{holds}. Put what the agent reads in a folder of its own "
                         "(like runs/my-agent) and pass that.")


def refuse_unreadable(path: Optional[str], what: str, tree: bool = True) -> None:
    """A ValueError naming `what` when uid AGENT_UID could not read `path` (and, with `tree`,
    everything in it): a folder it cannot enter, a file only its owner may read. Under
    bubblewrap with a root evaluator the agent is that uid, and reads only what others may."""
    if not path or not os.path.exists(path):
        return
    inside = [os.path.join(folder, name) for folder, dirs, files in os.walk(path) for name in dirs + files]
    for entry in [path, *(inside if tree else [])]:
        try:
            mode = os.stat(entry).st_mode
        except OSError:  # a dangling link: nothing to read there either way
            continue
        needed = 0o005 if stat.S_ISDIR(mode) else 0o004
        if mode & needed != needed:
            raise ValueError(f"{what}: the sandbox runs the agent as uid {AGENT_UID}, which cannot read {entry} "
                             f"({stat.filemode(mode)}). Make it readable by others: chmod -R a+rX {path}")


def _python_path() -> str:
    """This bitr_eval's own source root first (a worktree over an editable install), then the
    evaluator's PYTHONPATH."""
    own = str(Path(__file__).resolve().parent.parent)
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([own, *extra]))


def _agent_reads(visible: tuple[str, ...], cwd: str) -> list[str]:
    """Every path the agent process reads: the interpreter, its prefixes and import paths (a
    venv's and its base's), the agent's PYTHONPATH, `cwd` and `visible`."""
    interpreter = [sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.exec_prefix, sys.base_prefix,
                   sys.base_exec_prefix]
    imports = [entry or cwd for entry in sys.path] + _python_path().split(os.pathsep)
    return [p for p in [*interpreter, *imports, cwd, *visible] if p]


def bwrap_arguments(limits: Limits, visible: tuple[str, ...] = (), cwd: str = "/") -> list[str]:
    """The bubblewrap command line (up to `--`) for an agent that reads `visible` (its
    checkpoint, its factory's folder) and runs in `cwd`: read-only binds of what it reads, each
    at its own path, and nothing else of the host. A folder that is or holds /tmp or $HOME
    (`too_broad`) is not bound; an empty tmpfs covers the datasets in a bound folder."""
    size = str(limits.tmp_bytes)
    args = ["bwrap"]
    for path in SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    etc = [f"/etc/{name}" for name in SYSTEM_ETC if os.path.exists(f"/etc/{name}")]
    args += ["--dir", "/etc"]  # made by hand: a folder bubblewrap makes for a bind only root may enter
    for path in etc:
        args += ["--ro-bind", path, path]
    args += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    hidden = hidden_paths()
    bound, made = [*SYSTEM, *etc, "/dev", "/proc"], {"/", "/tmp", "/etc"}
    targets = {}  # path inside -> what is bound there; a path reached through a link is bound at both
    for source in _agent_reads(visible, cwd):
        real = os.path.realpath(source)
        if os.path.exists(real) and not too_broad(real) and not any(_under(real, h) for h in hidden):
            targets.update({real: real, os.path.abspath(source): real})
    for target in sorted(targets):  # a folder before what it holds, which it then covers
        if any(_under(target, b) for b in bound):
            continue
        for parent in map(str, reversed(Path(target).parents)):  # folders the agent's uid can enter
            if parent not in made:
                args += ["--dir", parent]
                made.add(parent)
        args += ["--ro-bind", targets[target], target]
        bound.append(target)
    for path in hidden:
        if any(_under(path, b) for b in bound):
            args += ["--size", "4096", "--tmpfs", path]
    inside = os.path.realpath(cwd)
    visible_cwd = any(_under(inside, b) for b in bound) and not any(_under(inside, h) for h in hidden)
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--new-session", "--die-with-parent", "--chdir", inside if visible_cwd else "/"]
    if os.geteuid() == 0:  # the agent host drops to AGENT_UID itself: it keeps only the capabilities for that
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # its own user namespace, as AGENT_UID (bubblewrap then drops every capability)
        args += ["--unshare-user", "--uid", str(AGENT_UID), "--gid", str(AGENT_UID)]
    return args


def agent_command(first: str, isolation: str, processes: Optional[int]) -> list[str]:
    """The agent host's command line (`first`: its end of the wire, or `--check`). Under
    bubblewrap it sets its own process limit (`processes`; None: a cgroup holds it) and, when
    the evaluator is root, drops to AGENT_UID before it loads anything of the submission."""
    command = [sys.executable, "-m", "bitr_eval.agent_host", first]
    if isolation == "bwrap":
        command += ["--processes", str(processes)] if processes is not None else []
        command += ["--uid", str(AGENT_UID)] if os.geteuid() == 0 else []
    return command


@functools.cache
def bwrap_problem() -> Optional[str]:
    """Why bubblewrap cannot run an agent here, or None when it can: checked once per process
    by starting the agent host as an agent gets it (the same binds, uid and limit), which
    loads nothing and exits."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    limits = Limits(memory_bytes=0, cpu_seconds=0.0)
    command = bwrap_arguments(limits, cwd=os.getcwd()) + ["--"] + agent_command("--check", "bwrap", limits.processes)
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                              env=_scrubbed_env("/tmp"))
    except (OSError, subprocess.SubprocessError) as err:
        return f"bwrap could not be run: {err}"
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).strip().splitlines()
        return f"bwrap exited with code {done.returncode}: {lines[-1] if lines else 'no message'}"
    return None


@functools.cache
def bwrap_version() -> str:
    try:
        return subprocess.run(["bwrap", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "bubblewrap (version unknown)"


def isolation_level() -> str:
    """`bwrap` or `process`: what `$BITR_SANDBOX` asks for (default `auto`) and the machine allows."""
    choice = os.environ.get(ISOLATION_CHOICE, "auto")
    if choice not in ("auto", "bwrap", "process"):
        raise ValueError(f"${ISOLATION_CHOICE} is {choice!r}: use auto, bwrap or process.")
    if choice == "process":
        return "process"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if choice == "bwrap":
        raise ValueError(f"The agent sandbox is required, but bubblewrap cannot run an agent here: {problem}. "
                         "bubblewrap (apt-get install bubblewrap) needs root or unprivileged user namespaces; "
                         f"without --require-sandbox and ${ISOLATION_CHOICE}=bwrap the agent runs as a plain process.")
    return "process"


def isolation_notice(isolation: str) -> str:
    """One line saying how the agent will run, printed before the first unit."""
    if cgroup.problem() is None:
        limits = "one cgroup limits the memory and processes of the agent and all its children"
    elif isolation == "bwrap":
        limits = f"memory is limited per process, processes by RLIMIT_NPROC ({cgroup.problem()})"
    else:
        limits = f"memory is limited per process, processes not at all ({cgroup.problem()})"
    if isolation == "bwrap":
        return f"sandbox: {bwrap_version()}, the agent as uid {AGENT_UID} in its own namespaces; {limits}"
    reason = bwrap_problem() if os.environ.get(ISOLATION_CHOICE) != "process" else f"${ISOLATION_CHOICE}=process"
    return (f"sandbox: none, the agent runs as a plain process with the evaluator's file access ({reason}); "
            f"--require-sandbox makes this an error; {limits}")


def refuse_linked_folder(folder: Path) -> None:
    """A ValueError when `folder` (of agent logs) is a symbolic link: the evaluator writes
    through no link (a `process`-level agent can plant one where the evaluator writes)."""
    if folder.is_symlink():
        raise ValueError(f"{folder} is a link, not a folder: the evaluator writes the agent logs only into a real "
                         "folder. Remove the link and run the same command again.")


def save_log(folder: Path, name: str, text: str) -> None:
    """Write `folder/name` without following a link planted there: a fresh file (O_EXCL)
    replaces whatever `name` was, and a `folder` that is a link is refused."""
    refuse_linked_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        where = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # made a link since the check above
        refuse_linked_folder(folder)
        raise
    try:
        scratch = f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=where)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(scratch, name, src_dir_fd=where, dst_dir_fd=where)
    finally:
        os.close(where)


def _scrubbed_env(home: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": home, "TMPDIR": home,
        "LANG": "C.UTF-8", "PYTHONPATH": _python_path(), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MPLCONFIGDIR": home,
    }


class _Log:
    """Drains the agent's stdout + stderr for ever, keeping the first LOG_LIMIT bytes."""

    def __init__(self, stream):
        self.kept, self.total = bytearray(), 0
        self._stream = stream
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        try:
            while True:
                chunk = self._stream.read1(65536)
                if not chunk:
                    break
                self.total += len(chunk)
                room = LOG_LIMIT - len(self.kept)
                if room > 0:
                    self.kept += chunk[:room]
        except (OSError, ValueError):
            pass

    def text(self, join_s: float = 2.0) -> str:
        self._thread.join(join_s)
        text = self.kept.decode(errors="replace")
        if self.total > len(self.kept):
            text += f"\n[... {self.total - len(self.kept)} more bytes of output not kept]\n"
        return text

    def tail(self, lines: int = 8, chars: int = 1500) -> str:
        text = self.kept.decode(errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:])[-chars:]


class AgentProcess:
    """One agent process in its sandbox, with the evaluator's end of the wire (`channel`)."""

    def __init__(self, isolation: str, limits: Limits, visible: tuple[str, ...] = (), sweep: bool = False):
        """`sweep`: at the end, also kill every other descendant of this process (only in a
        process that is a subreaper and runs nothing else, like a unit's env host)."""
        self.isolation, self.limits, self.sweep = isolation, limits, sweep
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._home = tempfile.mkdtemp(prefix="bitr-agent-") if isolation == "process" else "/tmp"
        self.group = cgroup.AgentGroup.make(limits.memory_bytes, limits.processes) if cgroup.problem() is None else None
        cwd = os.getcwd()
        command = agent_command(str(theirs.fileno()), isolation, None if self.group else limits.processes)
        if isolation == "bwrap":
            command = bwrap_arguments(limits, visible, cwd) + ["--"] + command
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(),), env=_scrubbed_env(self._home), cwd=cwd, start_new_session=True,
                preexec_fn=functools.partial(_limit_child, limits, self.group),
            )
        finally:
            theirs.close()
        self.log = _Log(self.process.stdout)
        self.channel = Channel(ours, FROM_AGENT, MAX_AGENT_MESSAGE)
        self.started = time.monotonic()

    def exit_reason(self, wait_s: float = 5.0) -> str:
        """Why the process ended (after its end of the wire closed)."""
        try:
            code = self.process.wait(wait_s)
        except subprocess.TimeoutExpired:
            return "agent process closed its connection"
        if self.isolation == "bwrap" and code > 128:  # bwrap reports a signal as 128 + its number
            code = -(code - 128)
        if code >= 0:
            reason = f"agent process died (exit code {code})"
        else:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            reason = f"agent process died (killed by {name})"
            if -code == signal.SIGXCPU or (-code == signal.SIGKILL and self._cpu_used_up()):
                reason += f": it used up its CPU-time limit of {self.limits.cpu_seconds:.0f} s"
            elif -code == signal.SIGKILL:
                whose = " for it and all its processes" if self.group else ""
                reason += (f" (memory limit {self.limits.memory_bytes / 2**30:.1f} GiB{whose}, or the system ran out "
                           "of memory)")
        tail = self.log.tail()
        return reason + (f"; its last output:\n{tail}" if tail else "")

    def _cpu_used_up(self) -> bool:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime >= self.limits.cpu_seconds

    def stop(self) -> str:
        """End the process and everything it started; return its captured output."""
        self.channel.close()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self.group is not None:
            self.group.kill()
            self.group.remove()
        if self.sweep:
            kill_descendants()
        text = self.log.text()
        if self.isolation == "process":
            shutil.rmtree(self._home, ignore_errors=True)
        return text


def _limit_child(limits: Limits, group: Optional[cgroup.AgentGroup]) -> None:
    """In the child before exec: into its cgroup (where there is one), resource limits, and
    death with the parent."""
    if group is not None:
        group.join()
    def cap(kind, soft, hard):
        _, current_hard = resource.getrlimit(kind)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(kind, (soft, hard))

    cpu = max(1, int(limits.cpu_seconds + 0.999))
    cap(resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes)
    cap(resource.RLIMIT_CPU, cpu, cpu + 5)
    cap(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT, FILE_SIZE_LIMIT)
    cap(resource.RLIMIT_CORE, 0, 0)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: Optional[int] = None) -> list[int]:
    """Every live process below `pid` (default: this one)."""
    tree, found, todo = _children(), [], [os.getpid() if pid is None else pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants(rounds: int = 50) -> None:
    """SIGKILL every descendant of this process and reap them (as a subreaper, this includes
    double-forked orphans of the agent), until none is left."""
    for _ in range(rounds):
        pids = descendants()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)


def probe_privileged(spec: str, isolation: str, visible: tuple[str, ...], limit_s: float) -> bool:
    """Load the factory `spec` in a sandboxed process and read its attribute `privileged`; a
    factory that cannot be loaded is a ValueError with the loader's message."""
    from bitr_eval.wire import WireError

    process = AgentProcess(isolation, Limits(memory_bytes=4 * 2**30, cpu_seconds=limit_s), visible)
    try:
        process.channel.send("probe", spec=spec)
        reply = process.channel.recv(time.monotonic() + limit_s)
        if reply.type == "error" and isinstance(reply.fields.get("text"), str):
            raise ValueError(reply.fields["text"][:2000])
        if reply.type != "ok" or not isinstance(reply.fields.get("privileged"), bool):
            raise ValueError(f"Agent {spec!r}: its factory could not be loaded ({reply.type} reply to the probe).")
        return reply.fields["privileged"]
    except WireError as err:
        raise ValueError(f"Agent {spec!r}: its factory could not be loaded ({err}; "
                         f"{process.exit_reason(1)}).") from None
    finally:
        process.stop()
