"""Small helpers every trainer shares: config dataclass -> command-line flags, atomic saves."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path


def str2bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_dataclass_flags(parser, cls, skip=(), defaults: bool = True, underscore_aliases: bool = False) -> None:
    """One flag per field of the dataclass `cls`: `--some-field VALUE`.

    bool fields get `--flag/--no-flag`; tuple fields take several values. With `defaults=False`
    every flag defaults to None, so the caller can tell which fields were set (overrides of a
    profile); `underscore_aliases` also accepts `--some_field`.
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flags = [f"--{field.name.replace('_', '-')}"]
        if underscore_aliases and "_" in field.name:
            flags.append(f"--{field.name}")
        kind = hints[field.name]
        default = field.default if defaults else None
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, dest=field.name)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(*flags, type=typing.get_args(kind)[0], nargs="+", default=default, dest=field.name)
        else:
            parser.add_argument(*flags, type=kind, default=default, dest=field.name, metavar=kind.__name__.upper())


def set_fields(args: argparse.Namespace, cls, skip=()) -> dict:
    """The fields of `cls` that were given on the command line (flags added with defaults=False)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in skip and getattr(args, f.name, None) is not None}


def _torch_save(f, obj) -> None:
    import torch

    torch.save(obj, f)


def atomic_save(obj, path: str | Path, save_fn=_torch_save) -> None:
    """save_fn(file, obj) into a scratch file beside path (.<name>.*.tmp), then rename: a kill
    never leaves a half-written file."""
    from bitr_envs.files import atomic_write

    atomic_write(path, lambda f: save_fn(f, obj))
