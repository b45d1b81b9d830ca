"""The agent's side of the wire: the process the sandbox runs,
`python -m bitr_eval.agent_host FD [--processes N] [--uid UID]`.

It holds the agent and nothing else: no env, no task, no suite seeds, no dataset, no result
file. Under bubblewrap it first confines itself (`--processes`: RLIMIT_NPROC, set here so that
in the sandbox's own user namespace it counts the sandbox's processes only; `--uid`: the
unprivileged uid it drops to when the evaluator is root). Then it loads the submission's
factory, answers the evaluator's requests over the socket FD (`bitr_eval.wire`), and exits when
told to or when the evaluator goes away. Whatever it sends back is checked by the evaluator;
nothing here is trusted. `--check` instead of FD confines itself and exits: the sandbox's probe.

Requests and replies:

    probe {spec}                                       -> ok {privileged}   (the factory's attribute)
    init {spec, env_id, checkpoint, agent_args} + spaces -> ready
    reset                                              -> ok
    task + features          (privileged agents only)  -> ok
    context + transitions                              -> ok
    act + obs                                          -> action
    observe + obs, action, reward, next_obs, flags (terminated, truncated, act)
                                                       -> action (of next_obs, when act) or ok
    close                                              -> (exit)

Any exception of the agent's is sent as `error {text}`.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import traceback

import numpy as np

from bitr_eval.wire import DTYPES, TO_AGENT, Channel, WireError


class _Failed(Exception):
    pass


def _call(method: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # the agent's own code
        tail = "".join(traceback.format_exception(err)[-3:]).strip()
        raise _Failed(f"agent.{method} raised {type(err).__name__}: {err}\n{tail}") from None


def _box(msg, prefix: str):
    import gymnasium as gym

    low, high = msg.arrays[f"{prefix}_low"].copy(), msg.arrays[f"{prefix}_high"].copy()
    return gym.spaces.Box(low=low, high=high, shape=low.shape, dtype=low.dtype)


def _action(action) -> np.ndarray:
    try:
        array = np.asarray(action)
    except Exception as err:
        raise _Failed(f"agent.act returned {type(action).__name__}, not a numeric array ({err})") from None
    if array.dtype.kind not in "fiub":
        raise _Failed(f"agent.act returned {str(action)[:200]!r}, not a numeric array")
    if array.dtype.str not in DTYPES:
        array = array.astype("<f8")
    return array


def serve(channel: Channel) -> None:
    from bitr_eval.agents import factory_is_privileged, load_factory

    msg = channel.recv()
    if msg.type == "probe":
        try:
            factory = load_factory(msg.fields["spec"])
        except Exception as err:
            channel.send("error", text=str(err))
            return
        channel.send("ok", privileged=factory_is_privileged(factory))
        return
    if msg.type != "init":
        raise WireError(f"expected init, got {msg.type}")
    f = msg.fields
    try:
        factory = load_factory(f["spec"])
        agent = _call("__init__", factory, **{"env_id": f["env_id"], "observation_space": _box(msg, "observation"),
                                             "action_space": _box(msg, "action"), "checkpoint": f["checkpoint"],
                                             **(f["agent_args"] or {})})
    except _Failed as err:
        channel.send("error", text=str(err))
        return
    except Exception as err:
        channel.send("error", text=f"the agent could not be loaded: {type(err).__name__}: {err}")
        return
    channel.send("ready")
    while True:
        msg = channel.recv()
        kind, arrays = msg.type, msg.arrays
        try:
            if kind == "act":
                channel.send("action", {"action": _action(_call("act", agent.act, arrays["obs"].copy()))})
            elif kind == "observe":
                terminated, truncated, then_act = arrays["flags"].tolist()
                _call("observe", agent.observe, arrays["obs"].copy(), arrays["action"].copy(), float(arrays["reward"]),
                      arrays["next_obs"].copy(), terminated, truncated)
                if then_act:
                    channel.send("action", {"action": _action(_call("act", agent.act, arrays["next_obs"].copy()))})
                else:
                    channel.send("ok")
            elif kind == "reset":
                _call("reset", agent.reset)
                channel.send("ok")
            elif kind == "task":
                _call("set_task", agent.set_task, arrays["features"].copy())
                channel.send("ok")
            elif kind == "context":
                _call("set_context", agent.set_context, {k: v.copy() for k, v in arrays.items()})
                channel.send("ok")
            elif kind == "close":
                return
            else:
                raise WireError(f"unexpected request {kind}")
        except _Failed as err:
            channel.send("error", text=str(err))
            return


def _confine(processes: int | None, uid: int | None) -> None:
    """The process limit, then the drop to `uid` (groups, gid, then every uid of root's: no
    way back, and no capability left)."""
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bitr_eval.agent_host")
    parser.add_argument("fd", nargs="?", type=int, help="the agent's end of the wire")
    parser.add_argument("--check", action="store_true", help="confine this process, then exit")
    parser.add_argument("--processes", type=int)
    parser.add_argument("--uid", type=int)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _confine(args.processes, args.uid)
    if args.check:
        return 0
    channel = Channel(socket.socket(fileno=args.fd), TO_AGENT, max_message=2**62)
    try:
        serve(channel)
    except WireError:
        return 0  # the evaluator went away or ended the unit
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
