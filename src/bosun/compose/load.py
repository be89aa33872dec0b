"""Read compose files into one model: YAML, interpolation, schema, merge, env files, profiles.

The order is compose-go's: each file is parsed, interpolated and validated on its own (so an
error names its file and line), then the files merge, then references are checked on the
merged model.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from bosun.compose import extends, merge, normalize, paths, references, schema
from bosun.compose.errors import ComposeError, Warnings
from bosun.compose.interpolate import interpolate

JSON = dict[str, Any]


@dataclass(slots=True)
class Project:
    """The merged, validated model of one stack, with what loading already had to warn about."""

    directory: Path
    model: JSON
    environment: dict[str, str]
    warnings: Warnings = field(default_factory=Warnings)

    @property
    def services(self) -> dict[str, JSON]:
        return dict(self.model.get("services") or {})

    def top(self, kind: str) -> dict[str, JSON]:
        """``volumes``/``networks``/``secrets``/``configs``: name -> definition (``{}`` if bare)."""
        return {str(k): dict(v or {}) for k, v in (self.model.get(kind) or {}).items()}


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it (YAML 1.2 booleans): ``no``, ``on``, ``off`` stay strings, so
    ``restart: no`` and a service named ``off`` mean what they say."""


ComposeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ComposeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _string_keys(tree: Any) -> Any:
    """Mapping keys as strings (``1:`` or ``8080:`` keys are names in Compose, not numbers)."""
    if isinstance(tree, dict):
        return {str(k): _string_keys(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_string_keys(v) for v in tree]
    return tree


def _yaml_error(filename: str, e: yaml.YAMLError) -> ComposeError:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return ComposeError(f"{filename}: yaml: line {mark.line + 1}, column {mark.column + 1}: {problem}")
    return ComposeError(f"{filename}: yaml: {' '.join(str(e).split())}")


STDIN = Path("-")  # `-c -`: the file comes from standard input, its directory is the current one


def _directory(path: Path) -> Path:
    return Path.cwd() if path == STDIN else path.resolve().parent


def _read(path: Path) -> str:
    if path == STDIN:
        return sys.stdin.read()
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ComposeError(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise ComposeError(f"open {path}: {e.strerror or e}") from None


def _env_file(path: Path, where: str) -> dict[str, str]:
    if not path.is_file():
        raise ComposeError(f"{where}: env file {path} not found")
    return {k: v or "" for k, v in dotenv_values(path).items()}


def _environment(directory: Path, shell: Mapping[str, str]) -> dict[str, str]:
    """The shell's variables over the project's ``.env`` (Compose's precedence)."""
    dotenv = directory / ".env"
    values = {k: v or "" for k, v in dotenv_values(dotenv).items()} if dotenv.is_file() else {}
    values.update(shell)
    return values


def _load_one(path: Path, env: Mapping[str, str], warnings: Warnings) -> JSON:
    text = _read(path)
    try:
        raw = _string_keys(yaml.load(text, Loader=ComposeLoader))
    except yaml.YAMLError as e:
        raise _yaml_error(str(path), e) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ComposeError(f"{path}: top-level object must be a mapping")

    def unset(name: str) -> None:
        warnings.add("", name, f'the "{name}" variable is not set. Defaulting to a blank string.')

    model = interpolate(raw, env, unset)
    schema.validate(model, str(path), text)
    return paths.absolutize(merge.prepare(model), _directory(path))


def _load_resolved(path: Path, env: Mapping[str, str], warnings: Warnings) -> JSON:
    """One file with its ``extends`` resolved (other files are read as they are needed)."""
    return extends.resolve(_load_one(path, env, warnings), path.resolve(), lambda p: _load_one(p, env, warnings))


def _include(model: JSON, directory: Path, shell: Mapping[str, str], warnings: Warnings) -> JSON:
    """Copy in what ``include`` names, each loaded as a project of its own; a name that is
    already defined is refused (Compose does not merge included resources)."""
    out = dict(model)
    for entry in out.pop("include", None) or []:
        spec = entry if isinstance(entry, dict) else {"path": entry}
        files = [spec["path"]] if isinstance(spec["path"], str) else list(spec["path"])
        included = load([directory / f for f in files], shell)
        for w in included.warnings:
            warnings.add(w.where, w.field, w.reason)
        for kind in ("services", "networks", "volumes", "secrets", "configs"):
            mine = dict(out.get(kind) or {})
            for name, value in (included.model.get(kind) or {}).items():
                if name in mine:
                    raise ComposeError(f"{kind}.{name} conflicts with imported resource from {files[0]}")
                mine[name] = value
            if mine:
                out[kind] = mine
    return out


def _active(svc: JSON, profiles: set[str]) -> bool:
    wanted = svc.get("profiles") or []
    return not wanted or "*" in profiles or bool(profiles & set(wanted))


def _resolve_env(project: Project) -> None:
    """``env_file`` then ``environment`` into one mapping per service; bare names come from
    the shell (or .env), as Compose resolves them."""
    services = {}
    for name, svc in project.services.items():
        where = f"services.{name}"
        env: dict[str, str] = {}
        files = svc.get("env_file") or []
        for item in [files] if isinstance(files, str) else files:
            spec = item if isinstance(item, dict) else {"path": item}
            path = (project.directory / str(spec["path"])).resolve()
            if spec.get("required", True) is False and not path.is_file():
                continue
            env.update(_env_file(path, f"{where}.env_file"))
        for key, value in normalize.list_or_dict(svc.get("environment")).items():
            if value is not None:
                env[key] = value
            elif key in project.environment:
                env[key] = project.environment[key]
        services[name] = dict(svc, environment=env)
        services[name].pop("env_file", None)
    project.model["services"] = services


def load(files: Sequence[str | Path], shell: Mapping[str, str] | None = None,
         profiles: Sequence[str] = ()) -> Project:
    """The project of ``files`` (merged in order). ``shell`` defaults to ``os.environ``;
    profiles default to ``$COMPOSE_PROFILES``."""
    if not files:
        raise ComposeError("no compose file given (use -c FILE)")
    shell = dict(os.environ if shell is None else shell)
    file_paths = [Path(f) for f in files]
    directory = _directory(file_paths[0])
    env = _environment(directory, shell)
    warnings = Warnings()
    model = merge.merge_models([_load_resolved(p, env, warnings) for p in file_paths])
    model = _include(model, directory, env, warnings)
    active = set(profiles) or {p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    model["services"] = {n: s for n, s in (model.get("services") or {}).items() if _active(s, active)}
    return _finish(Project(directory, model, env, warnings))


def _finish(project: Project) -> Project:
    _resolve_env(project)
    references.check(project.model)
    return project


def from_model(model: JSON, directory: Path, shell: Mapping[str, str], where: str) -> Project:
    """A project from a model built in code (``bosun service create``'s flags), checked by the
    same schema and references as a file; errors name ``where`` instead of a file."""
    schema.validate(model, where, "")
    return _finish(Project(directory, merge.prepare(model), dict(shell)))
