"""TOML → typed dataclasses, with ``--section.key=value`` overrides: the one loader every config uses.

    raw, sha = load_toml("pipeline/configs/sample.toml")          # dict + sha256 of the file's bytes
    raw = apply_overrides(raw, ["--executor.kind=slurm", "--optim.lr=3e-4"])
    opts = from_table(ExecutorOptions, raw.get("executor", {}), source="sample.toml", where="executor")

Rules, the same for the corpus config, the run config, the model config and every stage's table:

* an unknown key is an error that names the table, the key, the closest known key and every known key;
* a value of the wrong type is an error naming the key and the type wanted; ints are taken for floats, and
  integral floats for ints (``1e12`` tokens reads best in exponent form);
* ``Literal[...]`` and ``enum.Enum`` fields take one of their values and list them when given another;
  nested dataclasses, ``list[...]``, ``tuple[...]``, ``dict[str, ...]`` and ``X | None`` recurse;
* a dataclass's ``__post_init__`` (or ``validate()``) raising ``ValueError`` becomes a ``ConfigError`` that
  names the table: checks live with the fields they check and run when the config is read, not later;
* an override's value is typed by the field it lands on: ``--data.corpus=shards/x`` stays a string,
  ``--train.batch_tokens=4e6`` becomes an int, ``--log.progress=false`` a bool; an error in it names the
  override as the user typed it.

Precedence is override > file > dataclass default.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import hashlib
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "CliValue", "load_toml", "parse_override", "apply_overrides", "from_table", "check_fields",
           "fingerprint", "to_plain", "dump_toml", "did_you_mean"]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file or override, the key, and the fix."""


class CliValue(str):
    """A value typed on the command line: a string until the field it lands on says what it is."""

    arg: str = ""

    def __new__(cls, raw: str, arg: str = ""):
        obj = super().__new__(cls, raw)
        obj.arg = arg or raw
        return obj


def did_you_mean(word: str, known: typing.Iterable[str]) -> str:
    """'; did you mean 'x'?' for the closest known word, or ''."""
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------------------------------------- files
def load_toml(path: str | Path, *, what: str = "config", missing_hint: str = "") -> tuple[dict, str]:
    """Read a TOML file: (table, sha256 of its bytes). Errors name the file and, for bad TOML, the line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}" + (f"; {missing_hint}" if missing_hint else "")) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what} TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the {what}; check the file's permissions") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the {what} as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return raw, hashlib.sha256(data).hexdigest()


def merge_tables(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: tables merge key by key, at any depth; any other value (lists included)
    replaces the base's."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_tables(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_toml_extending(path: str | Path, *, what: str = "config", missing_hint: str = "",
                        _seen: tuple[Path, ...] = ()) -> tuple[dict, str]:
    """`load_toml`, where a top-level ``extends = "<file>"`` (relative to this file's folder) names a config this
    one is written over (`merge_tables`): a variant states only what differs. The sha256 covers every file of
    the chain (the base's bytes, then this file's), so changing the base changes it too."""
    path = Path(path)
    raw, sha = load_toml(path, what=what, missing_hint=missing_hint)
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw, sha
    if not isinstance(base_name, str) or not base_name:
        raise ConfigError(f"{path}: extends = {base_name!r} must be the path of another {what} (a string)")
    base_path = (path.parent / base_name).resolve()
    if base_path in _seen or base_path == path.resolve():
        chain = " → ".join(str(p) for p in (*_seen, path.resolve(), base_path))
        raise ConfigError(f"{path}: extends {base_name!r} makes a loop ({chain}); remove one extends")
    base, base_sha = load_toml_extending(base_path, what=what, _seen=(*_seen, path.resolve()),
                                         missing_hint=f"named by extends = {base_name!r} in {path}")
    return merge_tables(base, raw), hashlib.sha256(f"{base_sha}\n{sha}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- overrides
def parse_override(arg: str) -> tuple[list[str], CliValue]:
    """``--section.key=value`` (any depth: ``--executor.slurm.partition=gpu``) → (["section", "key"], value)."""
    if not arg.startswith("--") or "=" not in arg:
        raise ConfigError(f"override {arg!r}: expected --section.key=value, e.g. --optim.lr=3e-4")
    lhs, raw = arg[2:].split("=", 1)
    keys = lhs.split(".")
    if len(keys) < 2 or not all(keys):
        raise ConfigError(f"override {arg!r}: expected --section.key=value (a dotted key), e.g. --optim.lr=3e-4")
    return keys, CliValue(raw, arg)


def apply_overrides(raw: dict, overrides: typing.Iterable[str]) -> dict:
    """A deep copy of ``raw`` with each override's value set at its dotted key (tables made as needed)."""
    out = copy.deepcopy(raw)
    for arg in overrides:
        keys, value = parse_override(arg)
        node = out
        for i, k in enumerate(keys[:-1]):
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {arg}: {'.'.join(keys[:i + 1])} is a value, not a table")
            node = nxt
        node[keys[-1]] = value
    return out


# ---------------------------------------------------------------------------------------------- typing
def from_table(cls: type, table: Any, *, source: str | Path = "<config>", where: str = "") -> Any:
    """Build dataclass ``cls`` from a TOML table (see the module docstring for the rules)."""
    if isinstance(table, cls):
        return table
    prefix = f"{source}: [{where}]" if where else f"{source}:"
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix} must be a table of key = value, got {_show(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            typed = _typed_override(value)  # a typo on the command line: name it as the user typed it
            head = f"override {typed.arg}: [{where}]" if typed is not None and where else \
                f"override {typed.arg}:" if typed is not None else prefix
            raise ConfigError(f"{head} unknown key {key!r}{did_you_mean(key, fields)} "
                              f"(known: {', '.join(fields) or 'none'})")
        kwargs[key] = _convert(hints[key], value, source, f"{where}.{key}" if where else key)
    try:
        obj = cls(**kwargs)
        check = getattr(obj, "validate", None)
        if callable(check):
            check()
    except TypeError as e:  # a required field without a default
        missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise ConfigError(f"{prefix} missing key(s) {', '.join(map(repr, missing))}" if missing
                          else f"{prefix} {e}") from None
    except ValueError as e:  # the dataclass's own checks; they name their key
        msg = str(e)
        if msg.startswith(str(source)) or msg.startswith("override "):
            raise ConfigError(msg) from None
        # a value typed on the command line that the check names: say so, as the user typed it
        typed = [v for k, v in table.items() if isinstance(v, CliValue) and k in msg]
        head = (f"override {typed[0].arg}: [{where}]" if where else f"override {typed[0].arg}:") if typed else prefix
        raise ConfigError(f"{head} {msg}") from None
    return obj


def check_fields(obj: Any, source: str | Path = "<config>") -> None:
    """Check a dataclass built in code (not read from TOML) by the loader's rules: every field's type, and
    ``Literal``/``Enum`` fields holding one of their values. Call it from ``__post_init__`` so that
    ``Config(backend="typo")`` fails like the same typo in a file."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _convert(hints[f.name], getattr(obj, f.name), source, f.name)


def _typed_override(value: Any) -> CliValue | None:
    """The command-line value inside ``value`` (a value, or a table made by an override), if any."""
    if isinstance(value, CliValue):
        return value
    if isinstance(value, dict):
        for v in value.values():
            found = _typed_override(v)
            if found is not None:
                return found
    return None


def _show(value: Any) -> str:
    return value.arg if isinstance(value, CliValue) else repr(value)


def _where(source, key: str, value: Any) -> str:
    if isinstance(value, CliValue):
        return f"override {value.arg}: {key}"
    return f"{source}: {key}"


def _accepts_str(tp: Any) -> bool:
    if tp in (str, Path, Any):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return any(_accepts_str(a) for a in typing.get_args(tp))
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _from_cli(tp: Any, value: CliValue, source, key: str) -> Any:
    """A command-line string read as TOML when the field is not a string ("3e-4", "true", "[1, 2]")."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) and value in ("none", "None", "null") \
            and type(None) in typing.get_args(tp):
        return None
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        if _accepts_str(tp):
            return str(value)
        raise ConfigError(f"override {value.arg}: {key} = {str(value)!r} is not a valid value; expected "
                          f"{_type_name(tp)}") from None
    if _accepts_str(tp) and not isinstance(parsed, str):
        # a string field given a word TOML reads as a number or bool (a path "2024", "true"): keep the word,
        # unless the field also takes that type (str | None takes neither)
        if not _type_admits(tp, parsed):
            return str(value)
    return parsed


def _type_admits(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_admits(a, value) for a in typing.get_args(tp) if a is not type(None))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):  # list[str] and friends: TOML gave a list
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool))


def _convert(tp: Any, value: Any, source, key: str) -> Any:
    if tp is Any:
        return str(value) if isinstance(value, CliValue) else value
    if isinstance(value, CliValue):
        typed = value
        value = _from_cli(tp, value, source, key) if not (tp in (str, Path)) else str(value)
        if isinstance(value, CliValue):
            value = str(value)
        source = f"override {typed.arg}"  # errors below name the override as typed, not the file
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, key)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{_where(source, key, value)} = {value!r} has the wrong type; expected {_type_name(tp)}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed if a == value):
            raise ConfigError(f"{_where(source, key, value)} = {value!r}; choose one of "
                              f"{', '.join(map(repr, allowed))}{did_you_mean(value, map(str, allowed))}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if member.value == value:
                return member
        values = [m.value for m in tp]
        raise ConfigError(f"{_where(source, key, value)} = {value!r}; choose one of "
                          f"{', '.join(map(repr, values))}{did_you_mean(value, map(str, values))}")
    if dataclasses.is_dataclass(tp):
        return from_table(tp, value, source=source, where=key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(source, key, value)} must be a list, got {value!r}")
        args = typing.get_args(tp)
        if (origin or tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],)
        if (origin or tp) is tuple and len(args) > 1:
            if len(value) != len(args):
                raise ConfigError(f"{_where(source, key, value)} must be a list of {len(args)} items, got {value!r}")
            return tuple(_convert(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin or tp) is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, key, value)} must be a table, got {value!r}")
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise ConfigError(f"{_where(source, key, value)} = {value!r} has the wrong type; expected {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# ---------------------------------------------------------------------------------------------- out
def fingerprint(*parts: Any) -> str:
    """A stable short hash of config values (dataclasses included): does finished work still hold?"""
    blob = json.dumps([to_plain(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def to_plain(x: Any) -> Any:
    """Dataclasses, enums, paths and tuples as plain JSON/TOML values (dict keys sorted)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): to_plain(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, (list, tuple)):
        return [to_plain(v) for v in x]
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, Path):
        return str(x)
    return x


def dump_toml(table: dict, header: str = "") -> str:
    """Write a table of tables as TOML that ``tomllib`` reads back equal (None values are left out: TOML
    has no null, and a field whose default is None reads back as None)."""
    lines = [f"# {h}" for h in header.splitlines()] if header else []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{_key(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"
        raise TypeError(f"cannot write {type(v).__name__} {v!r} as TOML")

    def emit(tbl: dict, path: list[str]) -> None:
        scalars = {k: v for k, v in tbl.items() if not isinstance(v, dict) and v is not None}
        subs = {k: v for k, v in tbl.items() if isinstance(v, dict)}
        if path and (scalars or not subs):
            lines.append("")
            lines.append(f"[{'.'.join(_key(p) for p in path)}]")
        for k, v in scalars.items():
            lines.append(f"{_key(k)} = {value(v)}")
        for k, v in subs.items():
            emit(v, path + [k])

    emit(to_plain(table), [])
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(k: str) -> str:
    k = str(k)
    return k if k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)
