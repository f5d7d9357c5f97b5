"""The alignment corpus end to end: ``make corpus CORPUS=chat_sample`` (offline, the embedded samples) builds SFT
and DPO shards that hold to the contract, account for every record, read with plain pyarrow, pass ``verify``,
and are the ids ``jetmoe_core.chat`` (and transformers) give; ``verify`` catches corrupted parts; reruns are
cached, rebuilds give the same bytes, and a changed tokenizer file rebuilds what depends on it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from jetmoe_core import chat
from pipeline.sources import SAMPLES_DIR, Rejected, get_source
from pipeline.sources.alignment import parse_dpo, parse_sft
from pipeline.verify import verify
from tests.corpus_kit.chat_kit import ALIGNMENT, REPO, byte_bpe_tokenizer, hf_tokenizer, make_chat_corpus

MAX_TOKENS = 1024  # pipeline/configs/chat_sample.toml


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    tok = byte_bpe_tokenizer(root / "base_tokenizer.json")
    r, shards = make_chat_corpus(root, tok)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root, shards, tok, r


def manifest(shards: Path) -> dict:
    return json.loads((shards / "manifest.json").read_text())


def read_part(path: Path) -> pa.Table:
    before = pa.total_allocated_bytes()
    table = ipc.open_file(pa.memory_map(str(path))).read_all()
    assert pa.total_allocated_bytes() == before  # memory-mapped, no copy
    return table


def parts(shards: Path, source: str) -> list[Path]:
    man = manifest(shards)
    return [shards / p["path"] for sp in man["sources"][source]["splits"].values() for p in sp["parts"]]


def source_docs(name: str) -> dict[str, str]:
    """Document id → text of a source's sample, as the format stage makes them."""
    spec = get_source(name)
    return {d.id: d.text for path, rel in spec.local_files(SAMPLES_DIR) for d in spec.read(path, relpath=rel)
            if not isinstance(d, Rejected)}


def test_make_corpus_chat_sample_builds_offline(built):
    _, shards, tok, r = built
    assert f"-m pipeline build pipeline/configs/chat_sample.toml --tokenizer.path={tok}" in r.stdout
    man = manifest(shards)
    assert sorted(man["sources"]) == sorted(ALIGNMENT)
    assert {s: e["kind"] for s, e in man["sources"].items()} == {s: "dpo" if s.startswith("dpo") else "sft"
                                                                  for s in ALIGNMENT}
    assert {e["format"] for e in man["sources"].values()} == {"jetmoe-sft-v1", "jetmoe-dpo-v1"}
    # the chat corpus is tokenized with the base model's tokenizer, byte for byte
    assert (shards / "tokenizer.json").read_bytes() == tok.read_bytes()
    assert man["tokenizer"]["sha256"] == hashlib.sha256(tok.read_bytes()).hexdigest()


def test_every_record_is_accounted_for(built):
    _, shards, _, _ = built
    man = manifest(shards)
    totals = Counter()
    for name in ALIGNMENT:
        acc = man["sources"][name]["accounting"]
        spec = get_source(name)
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p, _ in spec.local_files(SAMPLES_DIR))
        assert acc[0]["stage"] == "format" and acc[0]["docs_in"] == rows, name  # every record of the files
        for prev, st in zip(acc, acc[1:]):
            assert st["docs_in"] == prev["docs_out"]
        for st in acc:
            assert st["docs_in"] == st["docs_out"] + sum(st["dropped"].values()) + sum(st["rejected"].values())
            for key in ("dropped", "rejected", "normalised"):
                totals.update({f"{st['stage']}:{r}": n for r, n in st.get(key, {}).items()})
        kept = sum(sp["n_docs"] for sp in man["sources"][name]["splits"].values())
        assert acc[-1]["docs_out"] == kept
    assert totals["dedup:exact_dup"] == 2                 # airoboros and orca-math each hold a copy
    assert totals["dedup_cross:cross_source_dup"] == 1    # the conversation in airoboros and capybara
    assert totals["shard:too_long"] == 2                  # an orca-math question and a DPO prompt
    assert totals["shard:truncated"] >= 1                 # capybara's long conversation, cut at a turn
    assert totals["format:control_chars"] == 1            # stripped, and the document kept
    assert totals["format:prompt_mismatch"] == 2 and totals["format:turn_order"] == 4


def test_sft_rows_are_the_chat_templates_ids_and_mask(built):
    _, shards, tok_path, _ = built
    tok = Tokenizer.from_file(str(tok_path))
    eos = tok.token_to_id("</s>")
    truncated = 0
    for name in ALIGNMENT[:-1]:
        docs = source_docs(name)
        for path in parts(shards, name):
            t = read_part(path)  # plain pyarrow: the columns a trainer reads
            assert t.schema.names == ["input_ids", "loss_mask", "doc_id", "n_tokens", "n_trained"]
            assert str(t.schema.field("loss_mask").type) == "list<item: uint8>"
            for ids, mask, doc_id, n, n_trained in zip(*(t.column(c).to_pylist() for c in t.schema.names)):
                assert len(ids) == len(mask) == n <= MAX_TOKENS and sum(mask) == n_trained > 0
                assert ids[-1] == eos and mask[-1] == 1
                msgs = parse_sft(docs[doc_id].replace("\x07", ""))
                want, want_mask = chat.end_at_last_eos(*chat.encode(tok, msgs), eos)
                if len(want) > MAX_TOKENS:  # cut to whole turns: a prefix ending with an assistant turn's EOS
                    truncated += 1
                    assert ids == want[: len(ids)] and mask == want_mask[: len(ids)].tolist()
                    continue
                assert ids == want and mask == want_mask.tolist()
                trained = tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
                assert trained == "".join(m["content"] + "</s>" for m in msgs if m["role"] == "assistant")
    assert truncated >= 1


def test_dpo_rows_match_transformers(built):
    _, shards, tok_path, _ = built
    tok, hf = Tokenizer.from_file(str(tok_path)), hf_tokenizer(tok_path)
    docs = source_docs("dpo_ultrafeedback")
    n = 0
    for path in parts(shards, "dpo_ultrafeedback"):
        t = read_part(path)
        assert t.schema.names == ["prompt_ids", "chosen_ids", "rejected_ids", "doc_id", "n_tokens"]
        for p, c, r, doc_id, n_tokens in zip(*(t.column(x).to_pylist() for x in t.schema.names)):
            prompt, chosen, rejected = parse_dpo(docs[doc_id])
            assert p == list(hf.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False))
            assert tok.decode(c, skip_special_tokens=False) == chosen + "</s>"
            assert tok.decode(r, skip_special_tokens=False) == rejected + "</s>"
            full = hf.apply_chat_template(prompt + [{"role": "assistant", "content": chosen}], return_dict=False)
            assert full[: len(p) + len(c)] == p + c
            assert n_tokens == len(p) + len(c) + len(r) and len(p) + max(len(c), len(r)) <= MAX_TOKENS
            n += 1
    assert n >= 25


def test_verify_cli_passes_deep(built):
    _, shards, _, _ = built
    r = subprocess.run([sys.executable, "-m", "pipeline", "verify", str(shards), "--deep"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "corpus holds to the contract" in r.stdout, r.stdout + r.stderr
    assert "sft_capybara       sft" in r.stdout and "dpo_ultrafeedback  dpo" in r.stdout


def test_status_and_inspect_read_the_chat_corpus(built):
    root, shards, tok, _ = built
    r = subprocess.run([sys.executable, "-m", "pipeline", "status", "pipeline/configs/chat_sample.toml",
                        f"--tokenizer.path={tok}", f"--corpus.work_dir={root / 'work'}",
                        f"--corpus.shards_dir={shards}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "38/38 units done" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "pipeline", "inspect", str(shards), "dpo_ultrafeedback", "--docs", "1",
                        "--chars", "100000"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "<|assistant|>\n" in r.stdout and "[rejected] " in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "pipeline", "inspect", str(shards), "sft_capybara", "--docs", "1"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "<|user|>\n" in r.stdout, r.stdout + r.stderr


def test_the_design_docs_reader_runs(built):
    """docs/design.md's zero-copy reading example, run on the built corpus."""
    text = (REPO / "docs/design.md").read_text()
    code = text.split("**Reading zero-copy**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(code.replace('root = "shards/chat_sample"', f'root = "{built[1]}"'), scope)
    assert scope["targets"][-1] == 2 and len(scope["targets"]) > 0  # the last trained token: an EOS


def test_pretraining_loader_refuses_a_chat_corpus(built):
    from trainer.data import Corpus
    from trainer.data.corpus import CorpusError

    with pytest.raises(CorpusError, match=r"reads pretrain sources, but the corpus holds dpo_ultrafeedback \(dpo\)"):
        Corpus.open(built[1])


# -- verify against corrupted parts ----------------------------------------------------------------------
def _rewrite(shards: Path, source: str, change) -> Path:
    """Rewrite the source's first part with ``change(columns) -> columns`` (python lists), keeping its schema,
    and update the manifest's bytes and sha256 so that only the rows are wrong."""
    path = parts(shards, source)[0]
    table = ipc.open_file(pa.memory_map(str(path))).read_all()
    cols = change({c: table.column(c).to_pylist() for c in table.column_names})
    new = pa.table({c: pa.array(v, type=table.schema.field(c).type) for c, v in cols.items()}, schema=table.schema)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        w.write_table(new)
    man = manifest(shards)
    for sp in man["sources"][source]["splits"].values():
        for p in sp["parts"]:
            if shards / p["path"] == path:
                p["bytes"], p["sha256"] = path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    (shards / "manifest.json").write_text(json.dumps(man))
    return path


def _row0(col, fn):
    return [fn(list(col[0]))] + col[1:]


CORRUPTIONS = {
    "mask_value": ("sft_airoboros", lambda c: {**c, "loss_mask": _row0(c["loss_mask"], lambda m: [2] + m[1:])},
                   "loss_mask values other than 0 and 1"),
    "mask_length": ("sft_airoboros", lambda c: {**c, "loss_mask": _row0(c["loss_mask"], lambda m: m[:-1])},
                    "loss_mask length differs from input_ids'"),
    "nothing_trained": ("sft_orca_math", lambda c: {**c, "loss_mask": _row0(c["loss_mask"], lambda m: [0] * len(m))},
                        "conversations without a trained token"),
    "turn_not_closed": ("sft_capybara", lambda c: {**c, "loss_mask": _row0(c["loss_mask"], lambda m: m[:-1] + [0])},
                        "not closed by EOS"),
    "no_final_eos": ("sft_systemchat", lambda c: {**c, "input_ids": _row0(c["input_ids"], lambda x: x[:-1] + [5])},
                     "conversations that do not end with EOS"),
    "empty_chosen": ("dpo_ultrafeedback", lambda c: {**c, "chosen_ids": _row0(c["chosen_ids"], lambda x: [])},
                     "rows with an empty chosen_ids"),
    "rejected_no_eos": ("dpo_ultrafeedback",
                        lambda c: {**c, "rejected_ids": _row0(c["rejected_ids"], lambda x: x[:-1] + [7])},
                        "rejected answers that do not end with EOS"),
    "n_tokens": ("dpo_ultrafeedback", lambda c: {**c, "prompt_ids": _row0(c["prompt_ids"], lambda x: [1023] + x)},
                    "rows whose n_tokens differs"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_verify_catches_a_corrupted_part(built, tmp_path, case):
    shards = tmp_path / "shards"
    shutil.copytree(built[1], shards)
    source, change, message = CORRUPTIONS[case]
    path = _rewrite(shards, source, change)
    problems = verify(shards, deep=True)
    assert any(str(path) in p and message in p for p in problems), problems


def test_verify_catches_wrong_kind_and_big_token_ids(built, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(built[1], shards)
    man = manifest(shards)
    man["sources"]["sft_ultrachat"]["kind"] = "dpo"
    man["sources"]["sft_ultrachat"]["format"] = "jetmoe-dpo-v1"
    man["sources"]["sft_capybara"]["kind"] = "chat"
    (shards / "manifest.json").write_text(json.dumps(man))
    problems = verify(shards)
    assert any("the format of sft parts, in a source the manifest says is dpo" in p for p in problems), problems
    assert any("no prompt_ids column" in p for p in problems), problems
    assert any("sources.sft_capybara: kind 'chat' is not one of pretrain, sft, dpo" in p for p in problems)
    vocab = man["tokenizer"]["vocab_size"]
    path = _rewrite(shards, "sft_airoboros",
                    lambda c: {**c, "input_ids": _row0(c["input_ids"], lambda x: [vocab + 3] + x[1:])})
    assert not any("vocab size" in p for p in verify(shards))  # bounds are the deep check's
    assert any(str(path) in p and f"token id {vocab + 3} >= vocab size {vocab}" in p for p in verify(shards, deep=True))


# -- reruns --------------------------------------------------------------------------------------------
def test_rerun_is_cached_rebuild_is_byte_identical_and_a_new_tokenizer_rebuilds(built, tmp_path):
    root, shards, tok, _ = built
    before = tree_bytes(shards)
    r, _ = make_chat_corpus(root, tok)
    assert r.returncode == 0 and "38 cached" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    shutil.rmtree(shards)  # the shard and manifest units see their outputs gone and run again
    r, _ = make_chat_corpus(root, tok)
    assert r.returncode == 0 and tree_bytes(shards) == before, r.stdout[-2000:]
    # the base model's tokenizer file is replaced (its corpus was rebuilt): the copy and the shards follow it
    byte_bpe_tokenizer(tok, vocab_size=900)
    r, _ = make_chat_corpus(root, tok)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "tokenizer/_corpus: ran again ([tokenizer] path" in r.stdout + r.stderr
    man = manifest(shards)
    assert man["tokenizer"]["vocab_size"] == 900 and man["tokenizer"]["sha256"] == hashlib.sha256(
        tok.read_bytes()).hexdigest()
    assert verify(shards, deep=True) == []


def test_a_missing_tokenizer_says_which_corpus_to_build(tmp_path):
    r, _ = make_chat_corpus(tmp_path, Path("shards/no_such_corpus/tokenizer.json"), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "it is the tokenizer of the corpus 'no_such_corpus'" in r.stderr
    assert "run `make corpus CORPUS=no_such_corpus` first" in r.stderr
    from pipeline.stages.tokenizer import missing_tokenizer

    assert "run `make corpus` first" in missing_tokenizer("shards/sample/tokenizer.json")  # the shipped default
    assert "give a tokenizer.json" in missing_tokenizer("/nowhere/tok.json")


def test_a_corpus_is_pretraining_or_alignment(tmp_path):
    from pipeline.config import ConfigError, load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('[corpus]\nname = "mixed"\nsources = ["refinedweb", "sft_capybara"]\n')
    with pytest.raises(ConfigError, match=r"mixes pretraining sources \(refinedweb\) with alignment sources "
                                          r"\(sft_capybara \(sft\)\)"):
        load_config(cfg)
    cfg.write_text('[corpus]\nname = "pre"\nsources = "all"\n')
    assert not any(s.startswith(("sft_", "dpo_")) for s in load_config(cfg).sources)


def test_a_chat_shard_row_never_splits_a_turn():
    """The too-long policy on its own: a conversation is cut after a whole assistant turn, or dropped."""
    from pipeline.stages.chat_shard import ChatShardWriter
    from pipeline.stages.shard import ShardOptions

    tok = Tokenizer.from_str(Tokenizer.from_file(str(_tiny_tok())).to_str())
    w = ChatShardWriter("sft", "unused", "s", "unused", "unused", ShardOptions(max_tokens=60))
    w.tok, w.eos_id, w.np_t = tok, tok.token_to_id("</s>"), np.uint16
    conv = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Tell me more. " * 20}, {"role": "assistant", "content": "More. " * 30}]
    ids, mask = w._truncate(conv)
    want, want_mask = chat.end_at_last_eos(*chat.encode(tok, conv[:2]), w.eos_id)
    assert list(ids) == want and mask.tolist() == want_mask.tolist()
    w.opts = ShardOptions(max_tokens=8)
    assert w._truncate(conv) == "too_long"


_TOK: list[Path] = []


def _tiny_tok() -> Path:
    if not _TOK:
        import tempfile

        _TOK.append(byte_bpe_tokenizer(Path(tempfile.mkdtemp()) / "tok.json", vocab_size=512))
    return _TOK[0]
