"""Red team: the attack agents of tests/attacks/agents.py against the evaluator.

Every attack runs under the isolation levels it concerns: `bwrap` and the `process` fallback.
A bubblewrap test is skipped, with the reason, where bubblewrap cannot run an agent; under CI
(`CI=true`) with bwrap installed it fails instead, so that a broken sandbox is never a skip.
Attacks against the file system (writing the leaderboard or the result file, reading the
datasets) are stopped by bwrap only; a test documents that the process fallback does not hide
the datasets.
"""

import dataclasses
import json
import os
import re
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import build_minari_root

from bitr_eval import cgroup, evaluate, load_result, sandbox, suite, validate
from bitr_eval.cli import main, print_result
from bitr_eval.sandbox import LOG_LIMIT
from bitr_eval.text import printable
from bitr_eval.wire import FROM_AGENT, WireError, _decode, encode

TESTS = Path(__file__).parent
ATTACKS = TESTS / "attacks" / "agents.py"
REPO = TESTS.parent
TINY = suite("tiny")
OFFLINE = dataclasses.replace(TINY, units=TINY.units[:1], episode_time_limit_s=10.0)  # offline-iid only
ONLINE = dataclasses.replace(TINY, units=TINY.units[2:], episode_time_limit_s=10.0)
OFFLINE_AND_ONLINE = dataclasses.replace(TINY, units=(TINY.units[0], TINY.units[2]), episode_time_limit_s=10.0)


def require_bwrap():
    problem = sandbox.bwrap_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true" and shutil.which("bwrap"):
        pytest.fail(f"CI has bubblewrap installed, but it cannot run an agent: {problem}")
    pytest.skip(f"bubblewrap cannot run an agent here: {problem}")


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    yield from build_minari_root(tmp_path_factory, TINY.datasets)


@pytest.fixture(autouse=True)
def root(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return minari_root


@pytest.fixture(params=["bwrap", "process"])
def isolation(request, monkeypatch):
    if request.param == "bwrap":
        require_bwrap()
    monkeypatch.setenv("BITR_SANDBOX", request.param)
    return request.param


@pytest.fixture
def bwrap(monkeypatch):
    require_bwrap()
    monkeypatch.setenv("BITR_SANDBOX", "bwrap")


def attack(name, out, chosen=OFFLINE, checkpoint=None, agent_file=ATTACKS, **agent_args):
    """Run attack `name`; return the result and, per unit, what the attack reported."""
    submission = {"name": name, "agent": f"{agent_file}:{name}", "checkpoint": checkpoint, "agent_args": agent_args}
    result = evaluate(chosen, submission, out, jobs=2)
    validate(result)
    assert load_result(out) == result
    return result, reports_of(name, result, out)


def reports_of(name, result, out):
    """Per unit, the lines `ATTACK <name> <json>` of its agent log."""
    reports = {}
    for unit in result["units"]:
        log = Path(f"{out}.logs") / (unit["unit_id"].replace("/", "__") + ".log")
        text = log.read_text() if log.exists() else ""
        reports[unit["unit_id"]] = [json.loads(m) for m in re.findall(rf"^ATTACK {name} (.*)$", text, re.M)]
    return reports


def only_unit(result):
    assert len(result["units"]) == 1
    return result["units"][0]


def test_snooping_finds_no_env_no_task_and_scores_like_a_context_free_agent(tmp_path, isolation):
    result, reports = attack("snoop", tmp_path / "r.json")
    unit = only_unit(result)
    assert unit["status"] == "ok" and unit["isolation"] == isolation
    assert abs(unit["summary"]["mean"]) < 10  # like the random agent
    found = reports[unit["unit_id"]]
    assert len(found) == 10  # one per task
    for seen in found:
        assert seen["envs"] == seen["task_objects"] == seen["frames_with_env"] == 0, seen
        assert seen["context_keys"] == ["actions", "next_observations", "observations", "rewards", "terminals",
                                        "timeouts"]
        assert not [v for v in seen["env_vars"] if "MINARI" in v or "BITR" in v or "RAY" in v], seen["env_vars"]
        if isolation == "bwrap":
            assert len(seen["processes"]) <= 3, seen["processes"]  # its own PID namespace


@pytest.mark.parametrize("how, reason", [("episode", "unknown type 'episode'"),
                                         ("ok", "'ok' message where 'action' was due")])
def test_forged_reports_fail_the_unit_and_scores_come_from_the_env(tmp_path, how, reason):
    result, _ = attack("forge", tmp_path / "r.json", how=how)
    unit = only_unit(result)
    assert unit["status"] == "failed" and reason in unit["failure"], unit["failure"]
    assert all(e["return"] < 1e6 for e in unit["episodes"])


@pytest.mark.parametrize("framed", [False, True])
def test_a_pickle_on_the_wire_is_never_unpickled(tmp_path, framed):
    marker = tmp_path / "pickle-ran"
    result, _ = attack("pickle_bomb", tmp_path / "r.json", marker=str(marker), framed=framed)
    unit = only_unit(result)
    assert unit["status"] == "failed" and "malformed message" in unit["failure"], unit["failure"]
    time.sleep(0.5)
    assert not marker.exists()


def test_privilege_set_on_the_instance_gets_no_task(tmp_path):
    result, reports = attack("claim_privilege", tmp_path / "r.json")
    assert result["submission"]["privileged"] is False
    unit = only_unit(result)
    assert unit["status"] == "ok" and abs(unit["summary"]["mean"]) < 10
    seen = reports[unit["unit_id"]]
    assert seen and all("task" not in s for s in seen)  # set_task was never called


def test_a_factory_declared_privileged_is_told_the_task_and_recorded_as_such(tmp_path):
    result, _ = attack("declared_privileged", tmp_path / "r.json")
    assert result["submission"]["privileged"] is True
    assert only_unit(result)["summary"]["mean"] > 90  # the oracle's policy, told the task


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_double_forked_children_die_with_the_unit(tmp_path, isolation):
    target, marker = tmp_path / "written-after-the-run", f"bitr-attack-{os.getpid()}-{time.time_ns()}"
    result, _ = attack("double_fork", tmp_path / "r.json", chosen=OFFLINE_AND_ONLINE, target=str(target), marker=marker)
    assert [u["status"] for u in result["units"]] == ["ok", "ok"]
    assert _processes_with(marker) == []
    time.sleep(5)  # the grandchild would have written by now
    assert not target.exists()


def test_the_agent_cannot_write_the_leaderboard_or_the_result_file(tmp_path, bwrap):
    out = tmp_path / "r.json"
    probe = REPO / "leaderboard" / ".attack-probe"
    targets = [str(probe), str(out), str(tmp_path / "new-file"), str(REPO / "bitr_eval" / "runner.py")]
    try:
        result, reports = attack("vandal", out, targets=targets)
    finally:
        written = probe.exists()
        probe.unlink(missing_ok=True)
    assert not written and not (tmp_path / "new-file").exists()
    outcomes = reports[only_unit(result)["unit_id"]][0]
    assert all(v.startswith("refused") for v in outcomes.values()), outcomes
    assert only_unit(result)["status"] == "ok" and only_unit(result)["isolation"] == "bwrap"
    assert "vandalised" not in out.read_text()


def test_the_agent_cannot_read_the_datasets(tmp_path, bwrap, minari_root):
    result, reports = attack("read_datasets", tmp_path / "r.json", roots=[str(minari_root)])
    reports = reports[only_unit(result)["unit_id"]]
    assert reports and all(report == {"read": []} for report in reports)  # one report per task's process


def agents_beside(folder: Path, secret: str) -> Path:
    """A copy of the attack agents in `folder`, beside a file `secret` only its owner may read."""
    folder.mkdir()
    shutil.copy(ATTACKS, folder / "agents.py")
    (folder / secret).write_text("owner only")
    (folder / secret).chmod(0o600)
    return folder / "agents.py"


def test_the_agent_runs_unprivileged_and_cannot_read_root_only_files(tmp_path, bwrap):
    checkpoint = tmp_path / "checkpoint"  # under /tmp: bound on top of the agent's private /tmp
    checkpoint.mkdir()
    (checkpoint / "weights.npz").write_bytes(b"weights")
    agents = agents_beside(tmp_path / "agent", "secret")  # the agent's folder is bound too
    secrets = ["/etc/shadow"] + ([str(agents.parent / "secret")] if os.geteuid() == 0 else [])  # only root may read
    expected = {"/etc/shadow": "refused: No such file or directory", str(checkpoint / "weights.npz"): "read"}
    expected.update({path: "refused: Permission denied" for path in secrets[1:]})
    result, reports = attack("read_secrets", tmp_path / "r.json", checkpoint=str(checkpoint), agent_file=agents,
                             paths=secrets)
    assert only_unit(result)["status"] == "ok"
    found = reports[only_unit(result)["unit_id"]][0]
    assert found["uid"] == found["euid"] == 65534 and int(found["capabilities"], 16) == 0, found
    assert found["read"] == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent is uid 65534 only under a root evaluator")
@pytest.mark.parametrize("private", ["a file", "the folder"])
def test_a_checkpoint_the_agent_could_not_read_is_refused_before_the_run(tmp_path, bwrap, private):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "weights.npz").write_bytes(b"weights")
    unreadable = checkpoint / "weights.npz" if private == "a file" else checkpoint
    unreadable.chmod(0o600 if private == "a file" else 0o700)
    refused = (f"--checkpoint {checkpoint}: the sandbox runs the agent as uid 65534, which cannot read {unreadable} "
               f"({'-rw-------' if private == 'a file' else 'drwx------'}). Make it readable by others: "
               f"chmod -R a+rX {checkpoint}")
    with pytest.raises(ValueError, match=re.escape(refused)):
        evaluate(OFFLINE, {"name": "x", "agent": "random", "checkpoint": str(checkpoint)}, tmp_path / "r.json")


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent is uid 65534 only under a root evaluator")
def test_an_agent_that_cannot_read_a_file_it_needs_fails_with_the_fix(tmp_path, bwrap):
    agents = agents_beside(tmp_path / "agent", "weights.npz")
    needed = str(agents.parent / "weights.npz")
    result, _ = attack("read_secrets", tmp_path / "r.json", agent_file=agents, paths=[needed], strict=True)
    unit = only_unit(result)
    assert unit["status"] == "failed" and "PermissionError" in unit["failure"]
    assert "the sandbox runs the agent as uid 65534: what it reads must be readable by others" in unit["failure"]


def test_an_interpreter_and_a_checkpoint_under_tmp_run_under_bubblewrap(tmp_path, bwrap):
    # CI makes its venv inside its checkout, which may live under /tmp, where the agent has a
    # private tmpfs: the sandbox binds the interpreter and the checkpoint on top of it.
    venv, checkpoint, out = tmp_path / "venv", tmp_path / "checkpoint", tmp_path / "r.json"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    (site_packages / "evaluator.pth").write_text("\n".join(site.getsitepackages()) + "\n")  # this venv's packages
    checkpoint.mkdir()
    (checkpoint / "weights.npz").write_bytes(b"weights")
    code = ("import dataclasses, sys; from bitr_eval import evaluate, suite; tiny = suite('tiny'); "
            "evaluate(dataclasses.replace(tiny, units=tiny.units[:1]), {'name': 'venv', 'agent': sys.argv[1], "
            "'checkpoint': sys.argv[2], 'agent_args': {'paths': []}}, sys.argv[3])")
    command = [str(venv / "bin" / "python"), "-c", code, f"{ATTACKS}:read_secrets", str(checkpoint), str(out)]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "BITR_SANDBOX": "bwrap"}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = load_result(out)
    assert only_unit(result)["status"] == "ok" and only_unit(result)["isolation"] == "bwrap"
    found = reports_of("read_secrets", result, out)[only_unit(result)["unit_id"]][0]
    assert found["prefix"] == str(venv) and found["read"] == {str(checkpoint / "weights.npz"): "read"}


@pytest.mark.parametrize("folder", ["/tmp", "/", "/etc", "home", "datasets", "above the datasets"])
def test_a_checkpoint_folder_that_is_or_holds_tmp_home_or_the_datasets_is_refused(tmp_path, minari_root, folder):
    path = {"home": str(Path.home()), "datasets": str(minari_root), "above the datasets": str(minari_root.parent)}
    checkpoint = path.get(folder, folder)
    with pytest.raises(ValueError, match=re.escape(f"--checkpoint {checkpoint}: the sandbox binds this folder")):
        evaluate(OFFLINE, {"name": "x", "agent": "random", "checkpoint": checkpoint}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_an_agent_file_in_a_folder_that_holds_the_datasets_is_refused(tmp_path, minari_root):
    agent = minari_root.parent / "agent.py"
    shutil.copy(ATTACKS, agent)
    with pytest.raises(ValueError, match=re.escape(f"--agent {agent}:snoop (its folder): the sandbox binds")):
        evaluate(OFFLINE, {"name": "x", "agent": f"{agent}:snoop"}, tmp_path / "r.json")


@pytest.fixture
def host_sockets(tmp_path):
    """Listening Unix sockets that anybody may connect to: in a folder outside /tmp that is
    not the agent's, in /tmp, and an abstract one."""
    outside = Path(tempfile.mkdtemp(prefix="bitr-attack-", dir="/var/tmp"))
    outside.chmod(0o755)
    paths, servers = [str(outside / "s.sock"), str(tmp_path / "s.sock"), f"@bitr-attack-{os.getpid()}"], []
    try:
        for path in paths:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            servers.append(server)
            server.bind("\0" + path[1:] if path.startswith("@") else path)
            if not path.startswith("@"):
                os.chmod(path, 0o777)
            server.listen(8)
            server.setblocking(False)
        yield paths, servers
    finally:
        for server in servers:
            server.close()
        shutil.rmtree(outside)


def test_the_agent_cannot_reach_a_unix_socket_of_the_host(tmp_path, bwrap, host_sockets):
    paths, servers = host_sockets
    result, reports = attack("connect_sockets", tmp_path / "r.json", paths=paths)
    outside, in_tmp, abstract = paths
    assert reports[only_unit(result)["unit_id"]][0] == {
        outside: "refused: No such file or directory", in_tmp: "refused: No such file or directory",
        abstract: "refused: Connection refused"}  # its own network namespace
    for server in servers:
        with pytest.raises(BlockingIOError):
            server.accept()


def test_a_link_planted_where_the_log_goes_is_replaced_not_followed(tmp_path, isolation):
    out, victim = tmp_path / "r.json", tmp_path / "victim"
    victim.write_text("precious")
    log = Path(f"{out}.logs") / (OFFLINE.units[0].unit_id.replace("/", "__") + ".log")
    result, reports = attack("plant_link", out, link=str(log), target=str(victim))
    # one report per task's process: under bubblewrap each plants in its private /tmp; as a plain
    # process the first plants here and the others find its link
    planted = reports[only_unit(result)["unit_id"]]
    assert "planted" in planted and set(planted) <= {"planted", "refused: File exists"}
    assert victim.read_text() == "precious"
    assert not log.is_symlink() and 'ATTACK plant_link "planted"' in log.read_text()


def test_a_logs_folder_that_is_a_link_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BITR_SANDBOX", "process")  # only a process-level agent can write beside the result file
    out, elsewhere = tmp_path / "r.json", tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = re.escape(f"{out}.logs is a link, not a folder")
    with pytest.raises(ValueError, match=refused):  # planted by the agent during the run
        attack("plant_link", out, link=f"{out}.logs", target=str(elsewhere))
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(ValueError, match=refused):  # there before the run: refused before any unit
        evaluate(OFFLINE, {"name": "random", "agent": "random"}, tmp_path / "r.json")
    assert not out.exists()


def test_terminal_escapes_of_the_agent_are_printed_and_logged_escaped(tmp_path, capsys):
    out = tmp_path / "r.json"
    result, _ = attack("escape_text", out)
    unit = only_unit(result)
    assert unit["status"] == "failed" and "\x1b[2J" in unit["failure"]  # the result file keeps the data
    print_result(result)
    shown = capsys.readouterr().out
    assert "FAILED" in shown and "\\x1b[2J\\x1b[1;31mall good" in shown
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", shown)
    log = (Path(f"{out}.logs") / (unit["unit_id"].replace("/", "__") + ".log")).read_text()
    assert "\\x1b]0;pwned\\x07" in log and not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", log)


def test_printable_escapes_controls_and_keeps_the_rest():
    assert printable("ok\tfine\nnext été ✓") == "ok\tfine\nnext été ✓"
    assert printable("\x1b[31mred\r\x00\x7f\x9b\u202e\u200b\u2028") == (
        "\\x1b[31mred\\x0d\\x00\\x7f\\x9b\\u202e\\u200b\\u2028")


def test_the_process_fallback_does_not_hide_the_datasets(tmp_path, monkeypatch, minari_root):
    # Documented limitation (docs/evaluation.md, threat model): without bubblewrap the agent
    # process has the evaluator user's file access, so it can read the task-labelled data.
    monkeypatch.setenv("BITR_SANDBOX", "process")
    result, reports = attack("read_datasets", tmp_path / "r.json", roots=[str(minari_root)])
    assert only_unit(result)["isolation"] == "process"
    assert reports[only_unit(result)["unit_id"]][0]["read"]


def test_a_memory_bomb_fails_its_unit_with_a_memory_reason(tmp_path, isolation):
    limited = dataclasses.replace(OFFLINE_AND_ONLINE, agent_memory_bytes=2**30)
    result, _ = attack("memory_bomb", tmp_path / "r.json", chosen=limited, gib=2)
    offline, online = result["units"]
    assert offline["status"] == "failed" and "MemoryError" in offline["failure"], offline["failure"]
    assert "out of memory: the agent's limit is 1.0 GiB" in offline["failure"]
    assert online["status"] == "ok"  # no context, no bomb: the run goes on


def test_the_agent_and_its_children_share_one_process_limit(tmp_path, isolation):
    limited = dataclasses.replace(OFFLINE, agent_processes=16, agent_memory_bytes=256 * 2**20)
    result, reports = attack("fork_bomb", tmp_path / "r.json", chosen=limited, children=40, mib=4)
    assert only_unit(result)["status"] == "ok", only_unit(result)["failure"]
    found = reports[only_unit(result)["unit_id"]][0]
    assert found["holding"] == found["forked"]
    if isolation == "bwrap" or cgroup.problem() is None:  # RLIMIT_NPROC inside bubblewrap, or the cgroup's pids.max
        assert found["forked"] < 16 and found["refused"] == "Resource temporarily unavailable", found
    else:  # documented (docs/evaluation.md): without a cgroup, the process fallback does not limit processes
        assert found["forked"] == 40 and found["refused"] is None, found


def test_the_agent_and_its_children_share_one_memory_limit(tmp_path, isolation):
    if cgroup.problem() is not None:
        pytest.skip(f"memory is limited per process only where no cgroup can be made ({cgroup.problem()})")
    limited = dataclasses.replace(OFFLINE, agent_processes=64, agent_memory_bytes=256 * 2**20)
    result, reports = attack("fork_bomb", tmp_path / "r.json", chosen=limited, children=8, mib=64)
    unit = only_unit(result)
    if reports[unit["unit_id"]]:  # the kernel killed children that went over, or else the agent itself
        assert reports[unit["unit_id"]][0]["holding"] * 64 < 256, reports
    else:
        assert unit["status"] == "failed" and "killed by SIGKILL" in unit["failure"], unit["failure"]


def test_a_cpu_bomb_fails_its_unit_at_the_cpu_time_limit(tmp_path, isolation):
    limited = dataclasses.replace(OFFLINE, agent_cpu_seconds=3.0, agent_cpu_seconds_per_episode=0.01,
                                  episode_time_limit_s=60.0)
    result, _ = attack("cpu_bomb", tmp_path / "r.json", chosen=limited)
    unit = only_unit(result)
    reason = "killed by SIGXCPU): it used up its CPU-time limit of 3 s"
    assert unit["status"] == "failed" and reason in unit["failure"], unit["failure"]


@pytest.mark.parametrize("name, args, reason", [
    ("giant_message", {}, "a message of 1073741932 bytes (the limit is 1048576)"),
    ("early_exit", {}, "agent process died (exit code 0)"),
    ("raise_in", {"where": "__init__"}, "agent.__init__ raised RuntimeError: boom in __init__"),
    ("raise_in", {"where": "reset"}, "agent.reset raised RuntimeError: boom in reset"),
    ("raise_in", {"where": "set_context"}, "agent.set_context raised RuntimeError: boom in set_context"),
    ("raise_in", {"where": "act"}, "agent.act raised RuntimeError: boom in act"),
])
def test_garbage_and_crashes_fail_the_unit_with_a_clear_reason(tmp_path, name, args, reason):
    result, _ = attack(name, tmp_path / "r.json", **args)
    unit = only_unit(result)
    assert unit["status"] == "failed" and reason in unit["failure"], unit["failure"]


def test_a_crash_in_observe_fails_the_online_unit(tmp_path):
    result, _ = attack("raise_in", tmp_path / "r.json", chosen=ONLINE, where="observe")
    unit = only_unit(result)
    assert unit["status"] == "failed" and "agent.observe raised RuntimeError: boom in observe" in unit["failure"]


def test_a_nan_action_fails_the_unit(tmp_path):
    out = tmp_path / "r.json"
    result = evaluate(OFFLINE, {"name": "nan", "agent": f"{TESTS / 'faulty_agents.py'}:make",
                                "agent_args": {"fault": "nan"}}, out)
    assert "non-finite action" in only_unit(result)["failure"]


def test_without_bubblewrap_the_run_falls_back_to_plain_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap is not installed")
    monkeypatch.delenv("BITR_SANDBOX", raising=False)
    result = evaluate(OFFLINE, {"name": "random", "agent": "random"}, tmp_path / "r.json")
    assert only_unit(result)["status"] == "ok" and only_unit(result)["isolation"] == "process"
    monkeypatch.setenv("BITR_SANDBOX", "bwrap")
    with pytest.raises(ValueError, match="bubblewrap cannot run an agent here: bwrap is not installed"):
        evaluate(OFFLINE, {"name": "random", "agent": "random"}, tmp_path / "other.json")


def test_bitr_evaluate_says_how_the_agent_runs_and_can_require_the_sandbox(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap is not installed")
    monkeypatch.delenv("BITR_SANDBOX", raising=False)
    out = tmp_path / "r.json"
    # a refused checkpoint stops the run early, after the line that says how the agent would run
    assert main(["evaluate", "--agent", "random", "--suite", "tiny", "--out", str(out), "--checkpoint", "/tmp"]) == 2
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].startswith(
        "sandbox: none, the agent runs as a plain process with the evaluator's file access (bwrap is not installed); "
        "--require-sandbox makes this an error; ")
    monkeypatch.setenv("BITR_SANDBOX", "auto")  # restored after the test; the flag sets it for the unit workers
    assert main(["evaluate", "--agent", "random", "--suite", "tiny", "--out", str(out), "--require-sandbox"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "bubblewrap cannot run an agent here: bwrap is not installed" in printed.err
    assert not out.exists()


def test_under_ci_a_bubblewrap_test_fails_where_bwrap_is_installed_but_cannot_start(monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap exited with code 1: no namespaces")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI has bubblewrap installed, but it cannot run an agent"):
        require_bwrap()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="bubblewrap cannot run an agent here: bwrap exited with code 1"):
        require_bwrap()


def test_a_factory_that_cannot_be_loaded_is_refused_before_the_run(tmp_path):
    with pytest.raises(ValueError, match="cannot import 'no_such_package.agent'"):
        evaluate(OFFLINE, {"name": "x", "agent": "no_such_package.agent:make"}, tmp_path / "r.json")
    with pytest.raises(ValueError, match="has no 'build'"):
        evaluate(OFFLINE, {"name": "x", "agent": f"{ATTACKS}:build"}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_giant_output_is_capped_in_the_log_and_the_unit_is_fine(tmp_path):
    out = tmp_path / "r.json"
    result, _ = attack("chatty", out)
    unit = only_unit(result)
    assert unit["status"] == "ok"
    log = Path(f"{out}.logs") / (unit["unit_id"].replace("/", "__") + ".log")
    assert log.stat().st_size < LOG_LIMIT + 1000 and "more bytes of output not kept" in log.read_text()


@pytest.mark.parametrize("frame, reason", [
    (b"\x05\x00\x00\x00\x00\x00\x00\x00" + b"\x80\x04K\x01.", "not JSON"),
    (encode("episode"), "unknown type 'episode'"),
    (b"\x1f\x00\x00\x00\x08\x00\x00\x00" + b'{"type":"action","arrays":[["action","|O8",[1]]]}'[:31] + b"x" * 8,
     "not JSON"),
    (encode("action", {"a": np.zeros(2, np.complex64).view(np.float32)}).replace(b"<f4", b"|O8"), "dtype '|O8'"),
    (encode("action", {"a": np.zeros(2)})[:-8], "runs past the end"),
    (b"\x00\xfa\x00\x00\x00\x00\x00\x00" + b"[" * 64000, "not JSON (RecursionError"),  # a nesting bomb
    (encode("action", {"a": np.zeros(2)}), None),
])
def test_the_wire_refuses_what_it_does_not_know(frame, reason):
    import struct

    header_length, body_length = struct.unpack_from("<II", frame)
    header, body = frame[8:8 + header_length], memoryview(frame[8 + header_length:])
    if reason is None:
        message = _decode(header, body, FROM_AGENT)
        assert message.type == "action" and message.arrays["a"].dtype == np.float64
        return
    with pytest.raises(WireError, match=re.escape(reason)):
        _decode(header, body, FROM_AGENT)


# Sealed evaluation ----------------------------------------------------------------------------

def recognition_table(tmp_path, unit):
    """What a submitter can make from the public data: each context row of each test task, and
    that task's goal (the table the `recognise` agent looks its context up in)."""
    import bitr_envs
    from bitr_envs.datasets import load

    goals = bitr_envs.tasks(unit.env_id, unit.split)
    data = load(unit.context_dataset)
    tasks_of: dict[tuple, set] = {}
    for t, task in enumerate(data.tasks):
        for row in task.observations:
            tasks_of.setdefault(tuple(row.tolist()), set()).add(t)
    # rows of one task only (every episode starts at the origin)
    table = [[list(row), goals[t]["goal"].tolist()] for row, (t, *others) in tasks_of.items() if not others]
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    return str(path)


def test_recognising_public_tasks_scores_like_the_oracle_and_like_random_when_sealed(tmp_path, bwrap, monkeypatch):
    from bitr_eval.sealed import Seal

    monkeypatch.setenv("BITR_CACHE_DIR", str(tmp_path / "cache"))  # the key's datasets are built here
    table = recognition_table(tmp_path, OFFLINE.units[0])
    public, recognised = attack("recognise", tmp_path / "public.json", checkpoint=table)
    assert all(recognised[only_unit(public)["unit_id"]]) and only_unit(public)["summary"]["mean"] > 90
    seal = Seal(b"a maintainer's secret, not this one")
    submission = {"name": "recognise", "agent": f"{ATTACKS}:recognise", "checkpoint": table, "agent_args": {}}
    sealed = evaluate(OFFLINE, submission, tmp_path / "sealed.json", jobs=2, seal=seal)
    validate(sealed)
    assert sealed["sealed"] == {"key_sha256": seal.key_sha256} and seal.secret.hex() not in json.dumps(sealed)
    unit = only_unit(sealed)
    assert not any(reports_of("recognise", sealed, tmp_path / "sealed.json")[unit["unit_id"]])  # no row known
    assert abs(unit["summary"]["mean"]) < 15  # like the random agent
    honest = evaluate(OFFLINE, {"name": "oracle", "agent": "oracle"}, tmp_path / "oracle.json", seal=seal)
    assert only_unit(honest)["summary"]["mean"] > 90  # told the sealed task, the expert still is the expert
    assert only_unit(honest)["references"] != only_unit(public)["references"]  # measured on the key's tasks


def start_table(tmp_path, chosen):
    """What a submitter can make from the public code alone: the first observation of every
    episode of the public evaluation (its start seeds replayed on each public test task), and
    the task it belongs to (the table the `match_start` agent looks its start states up in)."""
    import gymnasium as gym

    import bitr_envs
    from bitr_eval.worker import start_seed

    (unit,) = chosen.units
    env = gym.make(unit.env_id, split=unit.split)
    table = []
    for task in range(len(bitr_envs.tasks(unit.env_id, unit.split))):
        for seed in chosen.seeds:
            for phase, k in [("explore", k) for k in range(unit.explore_episodes)] + [
                    ("score", k) for k in range(unit.episodes)]:
                obs, _ = env.reset(seed=start_seed(unit, seed, task, phase, k), options={"task": task})
                table.append([obs.tolist(), task])
    path = tmp_path / "starts.json"
    path.write_text(json.dumps(table))
    return str(path)


def test_matching_start_states_recognises_every_public_task_and_no_sealed_one(tmp_path, bwrap, monkeypatch):
    from bitr_envs.datasets import shards
    from bitr_eval.sealed import Seal
    from bitr_eval.suites import Unit

    # Cheetah-Vel starts each episode from a seeded random state: on the public split the start
    # seeds are known, so a first observation names its task
    online = Unit("bitr/CheetahVel-v0", "test", "online", "tiny", 1, 1, 1)
    chosen = dataclasses.replace(TINY, units=(online,), episode_time_limit_s=30.0)
    shards.build(online.reference_dataset)
    table = start_table(tmp_path, chosen)
    _, public = attack("match_start", tmp_path / "public.json", chosen=chosen, checkpoint=table)
    looked_up = public[online.unit_id]
    tasks = len(json.loads(Path(table).read_text())) // 2
    assert len(looked_up) == 2 * tasks and None not in looked_up and len(set(looked_up)) == tasks
    monkeypatch.setenv("BITR_CACHE_DIR", str(tmp_path / "cache"))  # the key's datasets are built here
    submission = {"name": "match_start", "agent": f"{ATTACKS}:match_start", "checkpoint": table, "agent_args": {}}
    sealed = evaluate(chosen, submission, tmp_path / "sealed.json", jobs=2, seal=Seal(b"the maintainer's own secret"))
    looked_up = reports_of("match_start", sealed, tmp_path / "sealed.json")[online.unit_id]
    assert len(looked_up) == 2 * tasks and set(looked_up) == {None}  # no start state is known


def test_a_sealed_evaluation_needs_the_sandbox_and_a_long_key(tmp_path, monkeypatch):
    from bitr_eval.sealed import Seal, read_key

    monkeypatch.setenv("BITR_SANDBOX", "process")
    with pytest.raises(ValueError, match="needs the bubblewrap sandbox"):
        evaluate(OFFLINE, {"name": "r", "agent": "random"}, tmp_path / "r.json", seal=Seal(b"x" * 32))
    assert not (tmp_path / "r.json").exists()
    (tmp_path / "short.key").write_bytes(b"guessable")
    with pytest.raises(ValueError, match="holds 9 bytes, fewer than 16: .*head -c 32 /dev/urandom"):
        read_key(tmp_path / "short.key")
    with pytest.raises(ValueError, match="cannot read the sealing key"):
        read_key(tmp_path / "missing.key")


def test_a_sealed_result_is_filed_only_with_its_key(tmp_path, bwrap, monkeypatch):
    from bitr_eval.filing import add
    from bitr_eval.results import ResultError
    from bitr_eval.sealed import Seal

    monkeypatch.setenv("BITR_CACHE_DIR", str(tmp_path / "cache"))
    seal = Seal(b"the maintainer's key, 32 bytes.")
    out = tmp_path / "sealed.json"
    evaluate(TINY, {"name": "random", "agent": "random"}, out, jobs=2, seal=seal)
    board = tmp_path / "board"
    with pytest.raises(ResultError, match="only that key's holder can check its data; file it with --sealed"):
        add([out], board)
    with pytest.raises(ResultError, match="the key it was scored with"):
        add([out], board, seal=Seal(b"another maintainer's key, 32 b."))
    entry = add([out], board, seal=seal)
    assert json.loads((entry / "run-1.json").read_text())["sealed"] == {"key_sha256": seal.key_sha256}
    # one name is filed once per key: the public run of the same name has a folder of its own
    assert entry.name == f"random-{seal.key_sha256[:8]}"
    with pytest.raises(ResultError, match="already on the tiny board under this key"):
        add([out], board, seal=seal)
    public = tmp_path / "public.json"
    evaluate(TINY, {"name": "random", "agent": "random"}, public, jobs=2)
    assert add([public], board).name == "random"
    forged = json.loads(out.read_text())
    forged["units"][0]["references"]["expert"][0] += 1.0  # the scores no longer follow from it
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    with pytest.raises(ResultError):
        add([tmp_path / "forged.json"], board, name="forged", seal=seal)
