"""Filter → dedup → cross-source dedup → tokenizer → shards → manifest on the tiny corpus
(``tests.corpus_kit.tiny_corpus``, fixture ``tiny_corpus``).

Covers the shard contract: schema, metadata, zero-copy memory-mapped reads, EOS after every document, the
accounting identity end to end, byte-identical rebuilds, and kill -9 in the tokenize stage then rerun giving
the same bytes as a clean build.
"""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from pipeline.accounting import StageAccount, check_chain
from pipeline.verify import verify
from tests.corpus_kit.tiny_corpus import (SMALL_PARTS, SOURCES, VOCAB, build_tiny_corpus, make_ctx, make_docs,
                                          run_stages, tree_bytes, write_format_output)


@pytest.fixture()
def corpus(tiny_corpus):
    return tiny_corpus


def parts(corpus: Path):
    man = json.loads((corpus / "manifest.json").read_text())
    return [(corpus / p["path"], p) for s in man["sources"].values() for sp in s["splits"].values() for p in sp["parts"]]


def test_manifest_keys_and_tokenizer(corpus):
    man = json.loads((corpus / "manifest.json").read_text())
    assert man["corpus"] == "tiny" and man["dtype"] == "uint16" and man["config_sha256"] == "0" * 64
    tok = man["tokenizer"]
    assert tok["path"] == "tokenizer.json" and tok["vocab_size"] == VOCAB and tok["eos_id"] == 2 and tok["bos_id"] == 1
    assert tok["sha256"] == hashlib.sha256((corpus / "tokenizer.json").read_bytes()).hexdigest()
    assert sorted(man["sources"]) == sorted(SOURCES)
    for src in man["sources"].values():
        assert src["splits"]["val"]["n_docs"] > 0 and src["splits"]["train"]["n_docs"] > src["splits"]["val"]["n_docs"]


def test_schema_metadata_eos_zero_copy(corpus):
    man = json.loads((corpus / "manifest.json").read_text())
    for path, part in parts(corpus):
        before = pa.total_allocated_bytes()
        with pa.memory_map(str(path)) as f:
            table = ipc.open_file(f).read_all()
            assert pa.total_allocated_bytes() == before  # memory-mapped, no copy
            assert table.schema.field("input_ids").type == pa.list_(pa.uint16())
            meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
            assert meta["tokenizer_sha256"] == man["tokenizer"]["sha256"]
            assert (meta["vocab_size"], meta["eos_id"], meta["dtype"]) == (str(VOCAB), "2", "uint16")
            col = table.column("input_ids").combine_chunks()
            offsets = col.offsets.to_numpy()
            values = col.values.to_numpy()
            assert (values[offsets[1:] - 1] == 2).all()          # EOS closes every document
            assert (values[:-1][np.isin(np.arange(len(values) - 1), offsets[1:-1] - 1, invert=True)] != 2).all()
            assert table.num_rows == part["n_docs"] and len(values) == part["n_tokens"]
            assert table.column("n_tokens").to_numpy().tolist() == np.diff(offsets).tolist()


def test_accounting_identity_end_to_end(corpus):
    man = json.loads((corpus / "manifest.json").read_text())
    docs = make_docs()
    for name, src in man["sources"].items():
        accs = [StageAccount.from_dict(a) for a in src["accounting"]]
        check_chain(accs, name)
        assert [a.stage for a in accs] == ["format", "filter", "dedup", "dedup_cross", "shard"]
        assert accs[0].docs_in == len(docs[name])
        assert accs[-1].docs_out == src["splits"]["train"]["n_docs"] + src["splits"]["val"]["n_docs"]
    acc = {n: {a["stage"]: a for a in s["accounting"]} for n, s in man["sources"].items()}
    assert acc["weba"]["dedup"]["dropped"] == {"exact_dup": 1}
    assert acc["weba"]["filter"]["dropped"] == {"gopher_short_doc": 1}
    assert acc["webb"]["dedup_cross"]["dropped"] == {"cross_source_dup": 1}
    assert acc["codea"]["filter"]["dropped"] == {"code_max_line_length": 1}


def test_verify_and_external_checker_pass(corpus, capsys):
    assert verify(corpus, deep=True) == []
    # the team's outside checker, where a checkout has it beside the repository (users do not)
    checker = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_corpus.py"
    if checker.exists():
        r = subprocess.run([sys.executable, str(checker), str(corpus), "--deep"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_verify_catches_a_changed_part(corpus, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(corpus, root)
    path, _ = parts(root)[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify(root)
    assert any("sha256" in p for p in problems)


def test_byte_identical_rebuild_and_bounded_parts(corpus, tmp_path):
    again = build_tiny_corpus(tmp_path / "again", **SMALL_PARTS)
    ta = tree_bytes(corpus)
    assert tree_bytes(again) == ta
    assert len([p for p in ta if p.startswith("weba/train/part-")]) >= 2


KILL_SCRIPT = r"""
import os, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from tests.corpus_kit.tiny_corpus import make_ctx
from pipeline.stages.shard import ShardStage

class KillAfter(PipelineStep):
    name = "kill -9"
    def __init__(self, n):
        super().__init__(); self.n = n
    def run(self, data, rank=0, world_size=1):
        for i, doc in enumerate(data):
            if i == self.n:
                os.kill(os.getpid(), 9)
            yield doc

ctx = make_ctx(Path({root!r}), max_part_mib=0.012, batch_size=4)  # SMALL_PARTS
st = ShardStage(ctx, "weba")
job = st.jobs()[0]
pipe = job.pipeline[:1] + [KillAfter(42)] + job.pipeline[1:]
# rank 0 in this very process (the local executor's queue manager would outlive a kill -9 of its parent)
LocalPipelineExecutor(pipe, tasks=job.tasks, workers=1, logging_dir=str(st.logs_dir(job.name)))._run_for_rank(0)
"""


def test_kill9_in_tokenize_then_rerun_gives_same_bytes(corpus, tmp_path):
    root = tmp_path / "killed"
    ctx = make_ctx(root, **SMALL_PARTS)
    write_format_output(ctx)
    run_stages(ctx, ["filter", "dedup", "dedup_cross", "tokenizer"])
    script = KILL_SCRIPT.format(repo=str(Path(__file__).parents[1]), root=str(root))
    r = subprocess.run([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert r.returncode == -9, r.stderr[-2000:]
    left = sorted(p.name for p in (root / "shards" / "weba" / "train").iterdir())
    assert any(n.endswith(".arrow") for n in left)  # finished parts ...
    assert any(n.endswith(".tmp") for n in left)    # ... and the one it was writing
    run_stages(ctx, ["shard", "manifest"])           # the rerun: datatrove sees no completion, redoes the rank
    assert tree_bytes(ctx.shards_dir) == tree_bytes(corpus)
    assert verify(ctx.shards_dir) == []
