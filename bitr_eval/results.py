"""The result file of one evaluation run: its JSON schema, validation, and atomic writing.

A result file is data from strangers once it is submitted to the leaderboard: everything that
reads one validates it against `SCHEMA` first (`load_result`), and the leaderboard recomputes
every number in it from its episodes (`bitr_eval.scoring.verify`).

Version 2 records, per unit, the reference returns that normalised its scores, both checksums
of every dataset it read (computed from the files when the unit ran), and how the agent was
isolated; the submission may carry a `training` block (wall time, algorithm, seed, profile,
dataset) copied from the checkpoint's `training.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_VERSION = 2

_number = {"type": "number"}
_interval = {"type": "array", "items": _number, "minItems": 2, "maxItems": 2}
_summary = {
    "type": "object",
    "required": ["mean", "mean_ci95", "iqm", "iqm_ci95", "n"],
    "properties": {"mean": _number, "mean_ci95": _interval, "iqm": _number, "iqm_ci95": _interval,
                   "n": {"type": "integer", "minimum": 0}},
}
_nullable_summary = {"oneOf": [{"type": "null"}, _summary]}
_sha256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_dataset = {
    "type": "object",
    "required": ["id", "data_sha256", "content_sha256"],
    "properties": {"id": {"type": "string"}, "data_sha256": _sha256, "content_sha256": _sha256},
}
_returns = {"type": "array", "items": _number, "minItems": 1}
_references = {
    "oneOf": [{"type": "null"},  # a failed unit may have none
              {"type": "object", "required": ["random", "expert"], "additionalProperties": False,
               "properties": {"random": _returns, "expert": _returns}}],
}
_training = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "wall_seconds": {"type": ["number", "null"], "minimum": 0},
        "algo": {"type": ["string", "null"], "maxLength": 100},
        "seed": {"type": ["integer", "null"]},
        "profile": {"type": ["string", "null"], "maxLength": 100},
        "dataset": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 300},
                              {"type": "array", "items": {"type": "string", "maxLength": 300}}]},
    },
}
_episode = {
    "type": "object",
    "required": ["task", "seed", "episode", "phase", "return", "length", "success"],
    "properties": {
        "task": {"type": "integer", "minimum": 0}, "seed": {"type": "integer"},
        "episode": {"type": "integer", "minimum": 0}, "phase": {"enum": ["explore", "score"]},
        "return": _number, "length": {"type": "integer", "minimum": 1},
        "success": {"type": ["boolean", "null"]},
    },
}
_unit = {
    "type": "object",
    "required": ["unit_id", "env_id", "split", "protocol", "status", "failure", "datasets",
                 "references", "isolation", "episodes", "scores", "summary", "first_episode", "success_rate"],
    "properties": {
        "unit_id": {"type": "string", "maxLength": 200},
        "env_id": {"type": "string", "maxLength": 100},
        "split": {"enum": ["train", "test", "ood"]},
        "protocol": {"type": "string", "pattern": "^(offline-iid|offline-other-task|offline-unseen|offline-ood|online)(:[a-z0-9-]+)?$"},
        "status": {"enum": ["ok", "failed"]},
        "failure": {"type": ["string", "null"]},
        "datasets": {"type": "array", "items": _dataset},
        # the reference returns per task of the split that normalised the scores
        "references": _references,
        "isolation": {"type": "string", "maxLength": 100},  # how the agent ran: "process", ...
        # the [task, seed] blocks in the order they were played (a secret order, each task's agent fresh)
        "play_order": {"type": "array", "items": {"type": "array", "items": {"type": "integer"},
                                                  "minItems": 2, "maxItems": 2}},
        "episodes": {"type": "array", "items": _episode},
        # normalised score per (task, seed): mean over the scored episodes
        "scores": {"type": "array", "items": {"type": "array", "items": _number}},
        "summary": _nullable_summary,
        "first_episode": _nullable_summary,  # online: the very first episode's normalised score
        "success_rate": {"type": ["number", "null"]},
        "wall_seconds": _number,
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "BITR-Bench evaluation result",
    "type": "object",
    "required": ["schema_version", "submission", "suite", "versions", "hardware", "started",
                 "wall_seconds", "units", "aggregates"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "submission": {
            "type": "object",
            "required": ["name", "agent", "checkpoint", "agent_args", "privileged"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "agent": {"type": "string", "maxLength": 300},
                "checkpoint": {"type": ["string", "null"], "maxLength": 500},
                "agent_args": {"type": "object"},
                "privileged": {"type": "boolean"},  # what the agent says; the leaderboard decides
                "training": _training,
            },
        },
        "suite": {
            "type": "object",
            "required": ["name", "fingerprint", "seeds", "units"],
            "properties": {
                "name": {"type": "string"}, "fingerprint": {"type": "string"},
                "seeds": {"type": "array", "items": {"type": "integer"}},
                "units": {"type": "array", "items": {"type": "string"}},
            },
        },
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "hardware": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        "started": {"type": "string"},
        "wall_seconds": _number,
        "units": {"type": "array", "items": _unit},
        "aggregates": {
            "type": "object",
            "properties": {
                "protocols": {"type": "object", "additionalProperties": _nullable_summary},
                "ood_tasks": {"type": "object", "additionalProperties": _nullable_summary},
                "ood_drop": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                "context_drops": {"type": "object", "additionalProperties": {
                    "type": "object", "additionalProperties": {"type": ["number", "null"]}}},
            },
        },
    },
}


class ResultError(ValueError):
    """A result file that does not validate; the message says where and why."""


class OldSchemaError(ResultError):
    """A result file of an older schema version: it has to be made again with `bitr evaluate`."""


def remake_command(result: dict, out: str = "NEW.json") -> str:
    """The `bitr evaluate` command that makes a result of this schema for an old file's submission."""
    import shlex

    submission = result.get("submission") if isinstance(result.get("submission"), dict) else {}
    suite = result.get("suite", {}).get("name", "SUITE") if isinstance(result.get("suite"), dict) else "SUITE"
    words = ["bitr", "evaluate", "--agent", str(submission.get("agent", "AGENT"))]
    if submission.get("checkpoint"):
        words += ["--checkpoint", str(submission["checkpoint"])]
    if submission.get("agent_args"):
        words += ["--agent-args", json.dumps(submission["agent_args"])]
    if submission.get("name"):
        words += ["--name", str(submission["name"])]
    words += ["--suite", str(suite), "--out", out]
    return " ".join(shlex.quote(w) for w in words)


def validate(result: dict) -> None:
    import jsonschema

    try:
        jsonschema.validate(result, SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ResultError(f"invalid result at {where}: {err.message}") from None


def load_result(path: str | Path) -> dict:
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ResultError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(result, dict):
        raise ResultError(f"{path}: a result is a JSON object")
    version = result.get("schema_version")
    if isinstance(version, int) and version < SCHEMA_VERSION and isinstance(result.get("submission"), dict):
        raise OldSchemaError(f"{path}: result schema version {version}, this bitr-bench reads version "
                             f"{SCHEMA_VERSION}; make it again with `{remake_command(result)}`")
    validate(result)
    return result




TRAINING_FILE = "training.json"
TRAINING_FIELDS = ("wall_seconds", "algo", "seed", "profile", "dataset")


def read_training(checkpoint: str | Path | None) -> dict | None:
    """The submission's `training` block, from `training.json` in the checkpoint folder, else from
    the `training.json` of each of its family sub-folders (wall times summed, datasets listed;
    algo, seed and profile kept where they agree); None when there is none."""
    if not checkpoint or not Path(checkpoint).is_dir():
        return None
    root = Path(checkpoint)
    files = [root / TRAINING_FILE] if (root / TRAINING_FILE).is_file() else sorted(root.glob(f"*/{TRAINING_FILE}"))
    blocks = []
    for path in files:
        try:
            block = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(block, dict):
            blocks.append({k: block.get(k) for k in TRAINING_FIELDS})
    if not blocks:
        return None
    if len(blocks) == 1:
        return blocks[0]
    walls = [b["wall_seconds"] for b in blocks]
    merged = {"wall_seconds": sum(walls) if all(isinstance(w, (int, float)) for w in walls) else None,
              "dataset": [b["dataset"] for b in blocks if isinstance(b["dataset"], str)]}
    for key in ("algo", "seed", "profile"):
        values = {json.dumps(b[key]) for b in blocks}
        merged[key] = blocks[0][key] if len(values) == 1 else None
    return {k: merged[k] for k in TRAINING_FIELDS}
