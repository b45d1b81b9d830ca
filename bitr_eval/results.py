"""The result file of one evaluation run: its JSON schema, validation, and reading.

A result file is data from strangers once it is submitted to the leaderboard: everything that
reads one validates it against `SCHEMA` first (`load_result`), and the leaderboard recomputes
every number in it from its episodes (`bitr_eval.scoring.verify`). The bulk of a file, the
episodes and scores of every unit, is checked against its part of `SCHEMA` column by column
(`_check_items`) rather than by jsonschema's walk of every element, with jsonschema's words.

Version 2 records, per unit, the reference returns that normalised its scores, both checksums
of every dataset it read (computed from the files when the unit ran), and how the agent was
isolated; the submission may carry a `training` block (wall time, algorithm, seed, profile,
dataset) copied from the checkpoint's `training.json`.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path

import numpy as np

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
        "protocol": {"type": "string",
                     "pattern": "^(offline-iid|offline-other-task|offline-unseen|offline-ood|online)(:[a-z0-9-]+)?$"},
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
        "sealed": {"oneOf": [{"type": "null"}, {  # scored on a key's secret tasks (bitr_eval.sealed)
            "type": "object", "required": ["key_sha256"], "additionalProperties": False,
            "properties": {"key_sha256": _sha256}}]},
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


# Validation --------------------------------------------------------------------------------

ARRAYS = ("episodes", "scores")  # the arrays of every unit that `_check_items` checks, not jsonschema
_TYPES = {"number": (int, float), "integer": (int,), "boolean": (bool,), "null": (type(None),),
          "string": (str,), "object": (dict,), "array": (list,)}
_ABSENT = object()


@functools.cache
def _structure_validator():
    """A jsonschema validator (its schema checked once) of SCHEMA without the items of `ARRAYS`."""
    import jsonschema

    structure = copy.deepcopy(SCHEMA)
    for key in ARRAYS:
        del structure["properties"]["units"]["items"]["properties"][key]["items"]
    return jsonschema.validators.validator_for(SCHEMA)(structure)


def validate(result: dict) -> None:
    """Refuse a result that does not follow `SCHEMA`; the message says where and why."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_structure_validator().iter_errors(result))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ResultError(f"invalid result at {where}: {error.message}")
    for u, unit in enumerate(result["units"]):
        for key in ARRAYS:
            found = _check_items(unit[key], _unit["properties"][key]["items"])
            if found is not None:
                index, inner, message = found
                raise ResultError(f"invalid result at units/{u}/{key}/{index}{inner}: {message}")


def _check_items(items: list, schema: dict) -> tuple[int, str, str] | None:
    """The first item of `items` that `schema` refuses, as (index, path inside the item,
    jsonschema's message), or None. A column of values at a time: `schema` is a number, integer,
    boolean, null or string (with `minimum`, `enum`), an array of those, or an object of those
    (`required`, `properties`)."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    allowed = tuple(t for name in types for t in _TYPES[name])
    kinds = set(map(type, items))
    if types and not kinds <= set(allowed):
        integral = "integer" in types and "number" not in types
        for i, item in enumerate(items):
            if type(item) not in allowed and not (integral and type(item) is float and item.is_integer()):
                return i, "", f"{item!r} is not of type {', '.join(repr(t) for t in types)}"
    if "enum" in schema:
        for i, item in enumerate(items):
            if not (isinstance(item, str) and item in schema["enum"]):
                return i, "", f"{item!r} is not one of {schema['enum']!r}"
    if "minimum" in schema:
        numbers = [item if type(item) in (int, float) else math.inf for item in items]
        try:
            low = np.flatnonzero(np.asarray(numbers, dtype=np.float64) < schema["minimum"])
        except OverflowError:  # an integer beyond float: compare them one by one
            low = [i for i, n in enumerate(numbers) if n < schema["minimum"]]
        if len(low):
            return int(low[0]), "", f"{items[low[0]]!r} is less than the minimum of {schema['minimum']!r}"
    if "items" in schema:
        for i, item in enumerate(items):
            found = _check_items(item, schema["items"])
            if found is not None:
                return i, f"/{found[0]}{found[1]}", found[2]
    if "properties" in schema:
        errors = []  # the first error of each field: the earliest item's is reported
        for key in schema.get("required", []):
            missing = next((i for i, item in enumerate(items) if key not in item), None)
            if missing is not None:
                errors.append((missing, "", f"{key!r} is a required property"))
        for key, field in schema["properties"].items():
            column = [item.get(key, _ABSENT) for item in items]
            present = [i for i, value in enumerate(column) if value is not _ABSENT]
            if len(present) < len(column):
                column = [column[i] for i in present]
            found = _check_items(column, field)
            if found is not None:
                errors.append((present[found[0]], f"/{key}{found[1]}", found[2]))
        return min(errors, key=lambda e: e[0]) if errors else None
    return None


def read_result(data: bytes, source: str | Path) -> dict:
    """The result file whose bytes are `data`, validated; `source` names it in messages."""
    try:
        result = json.loads(data)
    except ValueError as err:  # not JSON, or not UTF-8
        raise ResultError(f"{source}: not a readable JSON file ({err})") from None
    if not isinstance(result, dict):
        raise ResultError(f"{source}: a result is a JSON object")
    version = result.get("schema_version")
    if isinstance(version, int) and version < SCHEMA_VERSION and isinstance(result.get("submission"), dict):
        raise OldSchemaError(f"{source}: result schema version {version}, this bitr-bench reads version "
                             f"{SCHEMA_VERSION}; make it again with `{remake_command(result)}`")
    validate(result)
    return result


def sealing_key(result: dict) -> str | None:
    """The sha256 of the key a result (or board record) was scored sealed with; None: the public tasks."""
    return (result.get("sealed") or {}).get("key_sha256")


def file_bytes(path: str | Path) -> bytes:
    """The bytes of the result file at `path`; a ResultError if it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ResultError(f"{path}: not a readable JSON file ({err})") from None


def load_result(path: str | Path) -> dict:
    """The result file at `path`, validated."""
    return read_result(file_bytes(path), path)


TRAINING_FILE = "training.json"
TRAINING_FIELDS = ("wall_seconds", "algo", "seed", "profile", "dataset")


def read_training(checkpoint: str | Path | None, families=None) -> dict | None:
    """The submission's `training` block, from `training.json` in the checkpoint folder, else from
    the `training.json` of each of its family sub-folders (those in `families`, env slugs, when
    given: the suite's; wall times summed, datasets listed; algo, seed and profile kept where
    they agree); None when there is none."""
    if not checkpoint or not Path(checkpoint).is_dir():
        return None
    root = Path(checkpoint)
    files = [root / TRAINING_FILE] if (root / TRAINING_FILE).is_file() else sorted(
        path for path in root.glob(f"*/{TRAINING_FILE}") if families is None or path.parent.name in families)
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
