"""A folder of "your own data" and a corpus config that declares it, for the user-source tests.

    root = make_user_data(tmp_path / "mine")       # notes/*.jsonl (nested text), pages/*.parquet, chats/*.jsonl
    cfg = write_user_config(tmp_path, root)        # [sources.notes|pages|chats], the whole DAG, a 320-token BPE

The text is made-up words between English stop words (``tiny_corpus.prose``), so it passes the web filters;
each file has one bad record (a missing field, a wrong type) that the build must reject and count. Same
arguments, same bytes.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.corpus_kit.tiny_corpus import prose

VOCAB = 320


def make_user_data(root: Path, n: int = 40) -> Path:
    rng = random.Random(5)
    (root / "notes").mkdir(parents=True)
    with open(root / "notes" / "part-0.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"note-{i}", "meta": {"body": prose(rng), "lang": "en"}}) + "\n")
        f.write(json.dumps({"id": "note-bad", "meta": {"lang": "en"}}) + "\n")          # no meta.body
    (root / "pages" / "2024").mkdir(parents=True)
    rows = [{"text": prose(rng), "url": f"https://example.org/{i}"} for i in range(n)]
    rows.append({"text": None, "url": "https://example.org/empty"})                      # a null text
    pq.write_table(pa.Table.from_pylist(rows), root / "pages" / "2024" / "shard-0.parquet")
    (root / "chats").mkdir()
    with open(root / "chats" / "talks.jsonl", "w") as f:
        for i in range(n // 2):
            turns = [{"from": "human", "value": prose(rng, 2)}, {"from": "gpt", "value": prose(rng, 3)}]
            f.write(json.dumps({"conversation": turns}) + "\n")
        f.write(json.dumps({"conversation": "not a list"}) + "\n")                         # wrong type
    return root


SOURCES = """
[sources.notes]
path = "{root}/notes"
format = "jsonl"
text_field = "meta.body"
id_field = "id"
metadata_fields = ["meta.lang"]

[sources.pages]
path = "{root}/pages"
format = "parquet"
text_field = "text"
metadata_fields = ["url"]

[sources.chats]
path = "{root}/chats"
format = "jsonl"
chat_field = "conversation"
chat_role_key = "from"
chat_text_key = "value"
"""


ALL_STAGES = '["download", "format", "filter", "dedup", "dedup_cross", "tokenizer", "shard", "manifest"]'


def write_user_config(d: Path, root: Path, *, name: str = "mine", sources: str = SOURCES,
                      selected: str = '["notes", "pages", "chats"]', stages: str = ALL_STAGES) -> Path:
    cfg = d / f"{name}.toml"
    cfg.write_text(f"""[corpus]
name = "{name}"
work_dir = "{d}/work"
shards_dir = "{d}/shards"
sources = {selected}
stages = {stages}

[executor]
workers = 1

[filters.web]
c4 = {{filter_no_terminal_punct = false}}

[tokenizer]
kind = "train"
vocab_size = {VOCAB}

[shards]
val_fraction = 0.1
""" + sources.format(root=root))
    return cfg
