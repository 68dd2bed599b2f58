"""Load params.yaml and validate it against the schema before any stage does work.

Every failure is one line naming the key, what was expected and what was found,
raised as ParamError (exit status 2).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import configs
from .errors import DkpError, ParamError

# package data: found wherever dkp is installed
SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")


def load_schema() -> dict:
    path = Path(os.environ.get("DKP_SCHEMA", SCHEMA_PATH))
    with open(path) as fh:
        return yaml.safe_load(fh)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error) -> str:
    """One line for a jsonschema ValidationError."""
    key = _key(error.absolute_path)
    found = error.instance
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(found) - set(allowed))
        name = extra[0] if extra else "?"
        hint = difflib.get_close_matches(name, allowed, n=1)
        where = f"{key}." if error.absolute_path else ""
        return f"unknown key '{where}{name}'" + (
            f" (did you mean '{where}{hint[0]}'?)" if hint else f"; expected one of {allowed}"
        )
    if v == "required":
        missing = [k for k in error.validator_value if k not in found]
        where = f"{key}." if error.absolute_path else ""
        return f"missing key '{where}{missing[0] if missing else '?'}'"
    if v == "enum":
        return f"{key}: expected one of {error.validator_value}, found {found!r}"
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{key}: expected {want}, found {type(found).__name__} {found!r}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"{key}: expected a value {op} {error.validator_value}, found {found!r}"
    if v == "uniqueItems":
        return f"{key}: expected distinct items, found {found!r}"
    if v in ("minItems", "maxItems", "minLength"):
        return f"{key}: expected {v} {error.validator_value}, found {found!r}"
    if v == "pattern":
        return f"{key}: expected a name matching {error.validator_value}, found {found!r}"
    return f"{key}: {error.message}"


def validate(params: Any, check_paths: bool = True, check_weights: bool = False) -> dict:
    """Validate a parameter mapping; return it unchanged or raise ParamError with one line.
    check_weights (with check_paths): also read each `pretrained` file and match its keys and
    shapes against its network (dkp.models.check_pretrained; needs torch, a second or two)."""
    if not isinstance(params, dict):
        raise ParamError(
            f"<top level>: expected a mapping of parameter groups, found {type(params).__name__}"
        )
    validator = jsonschema.Draft7Validator(load_schema())
    errors = sorted(
        validator.iter_errors(params), key=lambda e: (len(e.absolute_path), _key(e.absolute_path))
    )
    if errors:
        # The deepest error under the first offending key is the most specific one.
        first = errors[0]
        same = [
            e
            for e in validator.iter_errors(params)
            if list(e.absolute_path)[: len(first.absolute_path)] == list(first.absolute_path)
        ]
        best = max(same, key=lambda e: len(e.absolute_path)) if same else first
        raise ParamError(_describe(best))
    _check_semantics(params, check_paths)
    if check_paths and check_weights:
        _check_weights(params)
    return params


def _check_weights(p: dict) -> None:
    """Every `pretrained` file read and matched against its network, so a truncated download or
    the weights of another architecture stop the run here, not at training after the frames."""
    nets = [net for net in ("teacher", "student") if p[net]["pretrained"]]
    if not nets:
        return  # nothing to read: no torch import (1-2 s) in every stage that validates
    from . import models

    for net in nets:
        try:
            models.check_pretrained(p[net], net)
        except ParamError:
            raise
        except DkpError as exc:
            raise ParamError(str(exc)) from None


def _check_semantics(p: dict, check_paths: bool) -> None:
    """Cross-key rules a JSON Schema cannot say."""
    syn = p["data"]["synthetic"]
    lo, hi = syn["shot_seconds"]
    if lo > hi:
        raise ParamError(
            f"data.synthetic.shot_seconds: expected [shortest, longest] with shortest <= longest, "
            f"found {[lo, hi]}"
        )
    crop = p["frames"]["crop"]
    if crop is not None and crop > p["frames"]["size"]:
        raise ParamError(
            f"frames.crop: expected <= frames.size ({p['frames']['size']}), found {crop}"
        )
    if p["data"]["source"] == "synthetic":
        for key in ("annotations", "videos"):
            path = Path(p["data"][key])
            if path.is_absolute() or not str(path).startswith("data/synthetic"):
                raise ParamError(
                    f"data.{key}: expected a path under data/synthetic/ for source synthetic "
                    f"(the generator's output), found {str(path)!r}"
                )
    if p["data"]["source"] == "kinetics" and not p["data"]["class_list"]:
        raise ParamError(
            "data.class_list: expected the Mini-Kinetics class list file for source kinetics, "
            "found null"
        )

    names = configs.by_name(p)
    for key, name in [("sweep.s3_config", p["sweep"]["s3_config"])] + [
        (f"evaluate.operating_points[{i}]", n)
        for i, n in enumerate(p["evaluate"]["operating_points"])
    ]:
        if name not in names:
            hint = difflib.get_close_matches(name, list(names), n=1)
            raise ParamError(
                f"{key}: expected a configuration name declared by sweep, found {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
    if check_paths:  # (key, path, must be a folder): a preset's /path/to/ placeholder stops here
        paths = []
        if p["data"]["source"] != "synthetic":
            paths += [
                ("data.annotations", p["data"]["annotations"], False),
                ("data.videos", p["data"]["videos"], True),
            ]
        if p["data"]["class_list"]:
            paths.append(("data.class_list", p["data"]["class_list"], False))
        for net in ("teacher", "student"):
            if p[net]["pretrained"]:
                paths.append((f"{net}.pretrained", p[net]["pretrained"], False))
        for key, path, folder in paths:
            if not Path(path).exists():
                raise ParamError(
                    f"{key}: expected an existing path, found {path!r} (no such file or folder)"
                )
            if Path(path).is_dir() != folder:
                want, found = ("a folder", "a file") if folder else ("a file", "a folder")
                raise ParamError(f"{key}: expected {want}, found {found} {path!r}")


def check_seed(p: dict, seed: int) -> int:
    """`--seed N` of a per-seed stage: N must be one of run.seeds."""
    if seed not in p["run"]["seeds"]:
        raise ParamError(f"--seed: expected one of run.seeds {p['run']['seeds']}, found {seed}")
    return seed


def load(
    path: str | os.PathLike = "params.yaml", check_paths: bool = True, check_weights: bool = False
) -> dict:
    """Read and validate a params file; ParamError on any problem (check_weights: validate)."""
    path = Path(path)
    if not path.exists():
        raise ParamError(f"params file {str(path)!r} not found")
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return validate(params, check_paths=check_paths, check_weights=check_weights)
