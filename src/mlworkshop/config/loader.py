"""Reading, overriding, validating and writing mlworkshop.yaml.

Errors are rewritten for a lab admin: each names the key, the value that was given and what
would be accepted, instead of pydantic's traceback-shaped report.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .model import MLWorkshopConfig

ENV_PREFIX = "MLWORKSHOP_"
CONFIG_FILE = "mlworkshop.yaml"


class ConfigError(Exception):
    """A config problem a lab admin can fix; str() is the whole message."""


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: keeps the comments an admin wrote
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def read_yaml(path: Path) -> Any:
    """The raw document (comments kept), or an empty mapping when the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = _yaml().load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path} must hold a mapping of sections (hub:, auth:, ...), not {type(data).__name__}"
        )
    return data


def parse_scalar(text: str) -> Any:
    """A value typed on a command line or in an environment variable, read as YAML (8000 -> int)."""
    try:
        return YAML(typ="safe").load(io.StringIO(text))
    except YAMLError:
        return text


def _env_path(parts: list[str]) -> list[str]:
    """Option names are folded to lowercase; keys inside a mapping option keep their case
    (MLWORKSHOP_SPAWNER__ENVIRONMENT__HF_ENDPOINT sets HF_ENDPOINT, not hf_endpoint)."""
    path: list[str] = []
    model: type[BaseModel] | None = MLWorkshopConfig
    for part in parts:
        if model is None:
            path.append(part)
            continue
        part = part.lower()
        path.append(part)
        annotation = getattr(model.model_fields.get(part), "annotation", None)
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return path


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """MLWORKSHOP_HUB__PORT=9000 -> {"hub": {"port": 9000}}. MLWORKSHOP_SITE is not an option."""
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = _env_path(name[len(ENV_PREFIX) :].split("__"))
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = parse_scalar(raw)
    return overrides


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = {key: value for key, value in base.items()}
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _to_plain(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {str(k): _to_plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_to_plain(v) for v in data]
    return data


def _known_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = MLWorkshopConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(loc: tuple) -> str:
    model: type[BaseModel] = MLWorkshopConfig
    field = None
    for part in loc:
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return ""
        annotation = field.annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return field.description or "" if field else ""


def env_sources(environ: Mapping[str, str]) -> dict[str, str]:
    """{"hub.port": "MLWORKSHOP_HUB__PORT"}: which variable set which key."""
    return {
        ".".join(_env_path(name[len(ENV_PREFIX) :].split("__"))): name
        for name in environ
        if name.startswith(ENV_PREFIX) and "__" in name
    }


def _origin(key: str, origins: Mapping[str, str]) -> str:
    """' (from MLWORKSHOP_...)' when an environment variable set this key or a part of it."""
    for name in (n for k, n in origins.items() if key == k or key.startswith(k + ".")):
        return f" (from {name})"
    return ""


def format_validation_error(
    exc: ValidationError, source: str, origins: Mapping[str, str] | None = None
) -> str:
    """One line per problem: key, given value, what is allowed, where to fix it."""
    origins = origins or {}
    lines = [f"Invalid configuration ({source}):"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        value = err.get("input")
        where = _origin(key, origins)
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc)
            hint = difflib.get_close_matches(loc[-1], known, n=1)
            suggestion = f" Did you mean '{'.'.join(loc[:-1] + (hint[0],))}'?" if hint else ""
            lines.append(
                f"  - unknown key '{key}'{where}.{suggestion} Known keys here: {', '.join(known) or '(none)'}."
            )
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if isinstance(value, Mapping) and _known_keys((*loc, "")):
            # a check across a whole section: its message names the keys (not all their values)
            lines.append(f"  - {key}{where}: {msg}.")
            continue
        what = _describe(loc)
        lines.append(
            f"  - {key} = {value!r}{where}: {msg}." + (f" ({key}: {what})" if what else "")
        )
    lines.append(f"Fix the value in {source}, or run `mlworkshop config set KEY VALUE`.")
    return "\n".join(lines)


def validate(
    data: Mapping[str, Any], source: str, origins: Mapping[str, str] | None = None
) -> MLWorkshopConfig:
    try:
        return MLWorkshopConfig.model_validate(_to_plain(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, origins)) from None


def load_config(site: Path, environ: Mapping[str, str] | None = None) -> MLWorkshopConfig:
    """The site's config with MLWORKSHOP_<SECTION>__<KEY> environment overrides applied."""
    environ = os.environ if environ is None else environ
    path = site / CONFIG_FILE
    data = _to_plain(read_yaml(path))
    overrides = env_overrides(environ)
    source = str(path) + (" and MLWORKSHOP_* environment variables" if overrides else "")
    return validate(deep_merge(data, overrides), source, env_sources(environ))


def get_key(cfg: MLWorkshopConfig, key: str) -> Any:
    """The value of one key as plain data (what the YAML file holds: lists and mappings of
    str, int, float, bool and None), whatever its type in the model: a list of devices, a path."""
    parent: Any = None
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            known = list(type(node).model_fields) if isinstance(node, BaseModel) else []
            raise ConfigError(f"unknown key '{key}'. Known keys here: {', '.join(known)}.")
        parent, node = node, getattr(node, part)
    return parent.model_dump(mode="json", include={part})[part]


def to_yaml(value: Any, flow: bool = False) -> str:
    """`value` (plain data, as get_key returns it) as YAML text that parse_scalar, and so
    `set_key`, reads back to the same value: '0123' stays a string, None is null. flow=True puts a
    list or mapping on one line ([{kind: nvidia, index: 0}]), the form typed on a command line."""
    yaml = YAML(typ="safe", pure=True)
    yaml.sort_base_mapping_type_on_output = False  # the model's order, as in the file
    yaml.default_flow_style = flow
    yaml.allow_unicode = True
    yaml.width = 4096
    buffer = io.StringIO()
    yaml.dump(value, buffer)
    return buffer.getvalue().removesuffix("...\n").rstrip("\n")  # a lone scalar ends its document


def set_key(site: Path, key: str, raw_value: str) -> MLWorkshopConfig:
    """Validate the change against the whole config first; write only if it is valid."""
    return set_keys(site, [(key, raw_value)])


def set_keys(site: Path, changes: Sequence[tuple[str, str]]) -> MLWorkshopConfig:
    """Several values at once, validated together and written once: a change that needs two
    values (a backend and its image) is never refused half-made, and nothing is written unless
    all of them are valid."""
    path = site / CONFIG_FILE
    document = read_yaml(path)
    if not document:
        document = _yaml().load("{}\n")
    for key, raw_value in changes:
        parts = key.split(".")
        node = document
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], Mapping):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = parse_scalar(raw_value)
    keys = ", ".join(key for key, _ in changes)
    cfg = validate(document, f"{path} after setting {keys}")
    from .setchecks import check_set

    for key, _ in changes:
        problem = check_set(key, cfg)  # a file the value names is there (a typo is caught now)
        if problem:
            raise ConfigError(problem)
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.unlink(missing_ok=True)
    # Owner-only, like `init` makes it: the file may hold database passwords.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
    tmp.replace(path)
    return cfg
