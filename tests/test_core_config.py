"""jetmoe_core.config: the one TOML → dataclass loader (types, overrides, errors that name the key)."""
from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from jetmoe_core.config import (ConfigError, apply_overrides, dump_toml, fingerprint, from_table, load_toml,
                                load_toml_extending, merge_tables, parse_override)


class Kind(enum.Enum):
    LOCAL = "local"
    SLURM = "slurm"


@dataclass
class Inner:
    partition: str = "cpu"
    cpus: int = 1


@dataclass
class Outer:
    tokens: int = 10
    lr: float = 1e-3
    name: str = "x"
    path: str | None = None
    flag: bool = False
    mode: Literal["auto", "true", "false"] = "auto"
    kind: Kind = Kind.LOCAL
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    table: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.tokens <= 0:
            raise ValueError(f"tokens = {self.tokens} must be > 0")


def test_types_and_integral_floats():
    o = from_table(Outer, {"tokens": 1e12, "lr": 3, "kind": "slurm", "inner": {"cpus": 4}, "tags": ["a"],
                           "table": {"a": 1}}, source="f.toml", where="x")
    assert o.tokens == 10 ** 12 and isinstance(o.tokens, int)
    assert o.lr == 3.0 and isinstance(o.lr, float)
    assert o.kind is Kind.SLURM and o.inner.cpus == 4 and o.tags == ["a"] and o.table == {"a": 1}


@pytest.mark.parametrize("table, words", [
    ({"tokenz": 1}, ["[x] unknown key 'tokenz'", "did you mean 'tokens'"]),
    ({"tokens": 1.5}, ["x.tokens", "1.5", "an integer"]),
    ({"flag": 1}, ["x.flag", "true or false"]),
    ({"mode": "yes"}, ["x.mode", "'auto', 'true', 'false'"]),
    ({"kind": "slurn"}, ["x.kind", "did you mean 'slurm'"]),
    ({"inner": {"cpu": 2}}, ["[x.inner] unknown key 'cpu'", "did you mean 'cpus'"]),
    ({"tokens": -1}, ["f.toml: [x] tokens = -1 must be > 0"]),
    ({"inner": 3}, ["[x.inner] must be a table"]),
])
def test_errors_name_the_key(table, words):
    with pytest.raises(ConfigError) as e:
        from_table(Outer, table, source="f.toml", where="x")
    for w in words:
        assert w in str(e.value)


def test_overrides_are_typed_by_their_field():
    raw = apply_overrides({"x": {"name": "a"}}, ["--x.tokens=4e6", "--x.name=2024", "--x.path=shards/s",
                                                 "--x.flag=true", "--x.mode=true", "--x.inner.partition=gpu",
                                                 "--x.tags=[\"a\", \"b\"]", "--x.path=none"])
    o = from_table(Outer, raw["x"], source="f.toml", where="x")
    assert o.tokens == 4_000_000 and o.name == "2024" and o.flag is True and o.mode == "true"
    assert o.inner.partition == "gpu" and o.tags == ["a", "b"] and o.path is None


def test_override_errors_name_the_override():
    raw = apply_overrides({}, ["--x.lr=fast"])
    with pytest.raises(ConfigError, match=r"override --x.lr=fast: x.lr"):
        from_table(Outer, raw["x"], source="f.toml", where="x")
    with pytest.raises(ConfigError, match="expected --section.key=value"):
        parse_override("--lr=3")
    with pytest.raises(ConfigError, match="is a value, not a table"):
        apply_overrides({"x": {"name": "a"}}, ["--x.name.deep=1"])


def test_load_toml_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such run config; see trainer/configs"):
        load_toml(tmp_path / "nope.toml", what="run config", missing_hint="see trainer/configs")
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [1,\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_toml(bad)
    good = tmp_path / "good.toml"
    good.write_text("[x]\ntokens = 5\n")
    raw, sha = load_toml(good)
    assert raw == {"x": {"tokens": 5}} and len(sha) == 64


def test_dump_toml_round_trips():
    o = from_table(Outer, {"tokens": 7, "kind": "slurm", "tags": ["a"], "table": {"b": 2}, "name": 'q"\n'},
                   source="f", where="x")
    text = dump_toml({"x": o, "y": {"z": 1.5, "w": float("inf")}}, header="resolved")
    back = tomllib.loads(text)
    assert from_table(Outer, back["x"], source="f", where="x") == o
    assert back["y"] == {"z": 1.5, "w": float("inf")}
    assert text.startswith("# resolved")


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint(Outer(), 1) == fingerprint(Outer(), 1)
    assert fingerprint(Outer(), 1) != fingerprint(Outer(tokens=11), 1)
    assert len(fingerprint("a")) == 16


def test_unknown_key_from_an_override_names_the_override():
    raw = apply_overrides({"tokens": 3}, ["--x.tokenz=5"])["x"]
    with pytest.raises(ConfigError, match=r"^override --x.tokenz=5: \[x\] unknown key 'tokenz'; did you mean"):
        from_table(Outer, {"tokenz": raw["tokenz"]}, source="f.toml", where="x")
    with pytest.raises(ConfigError, match=r"^override --nosection.lr=1: unknown key 'nosection'"):
        from_table(Outer, apply_overrides({}, ["--nosection.lr=1"]), source="f.toml")


def test_a_failed_check_of_an_overridden_value_names_the_override():
    raw = apply_overrides({"x": {"tokens": 3}}, ["--x.tokens=-5"])
    with pytest.raises(ConfigError, match=r"^override --x.tokens=-5: \[x\] tokens = -5 must be > 0"):
        from_table(Outer, raw["x"], source="f.toml", where="x")
    with pytest.raises(ConfigError, match=r"^f.toml: \[x\] tokens = -5 must be > 0"):
        from_table(Outer, {"tokens": -5}, source="f.toml", where="x")


def test_a_bad_choice_typed_as_an_override_names_the_override():
    raw = apply_overrides({}, ["--x.mode=maybe"])
    with pytest.raises(ConfigError, match=r"^override --x.mode=maybe: x.mode = 'maybe'; choose one of"):
        from_table(Outer, raw["x"], source="f.toml", where="x")


def test_merge_tables_merges_tables_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2], "s": "base"}
    over = {"a": {"y": {"q": 3}, "z": 4}, "l": [9], "t": True}
    assert merge_tables(base, over) == {"a": {"x": 1, "y": {"p": 1, "q": 3}, "z": 4}, "l": [9], "s": "base", "t": True}
    assert base["a"]["y"] == {"p": 1, "q": 2}  # the inputs are left as they were


def test_extends_reads_the_base_under_the_file(tmp_path):
    (tmp_path / "base.toml").write_text('[corpus]\nname = "base"\nsources = ["a", "b"]\n[shards]\nval = 0.01\n')
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.toml"
    child.write_text('extends = "../base.toml"\n[corpus]\nname = "child"\n[tok]\nvocab = 4\n')
    raw, sha = load_toml_extending(child)
    assert raw == {"corpus": {"name": "child", "sources": ["a", "b"]}, "shards": {"val": 0.01}, "tok": {"vocab": 4}}
    # the hash follows the base too: a change there is a change of the config
    (tmp_path / "base.toml").write_text('[corpus]\nname = "base"\nsources = ["a"]\n[shards]\nval = 0.01\n')
    assert load_toml_extending(child)[1] != sha
    # without extends it is load_toml
    assert load_toml_extending(tmp_path / "base.toml") == load_toml(tmp_path / "base.toml")


def test_extends_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('extends = "b.toml"\n')
    b.write_text('extends = "a.toml"\n')
    with pytest.raises(ConfigError, match=r"b.toml: extends 'a.toml' makes a loop \(.*a.toml → "):
        load_toml_extending(a)
    a.write_text('extends = "missing.toml"\n')
    with pytest.raises(ConfigError, match=r"missing.toml: no such config; named by extends = 'missing.toml' in "):
        load_toml_extending(a)
    a.write_text("extends = 3\n")
    with pytest.raises(ConfigError, match=r"extends = 3 must be the path of another config"):
        load_toml_extending(a)
