"""Bad input at the reader level: bad records are rejected one by one, bad files raise CorruptFileError."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from datatrove.data import Document

from pipeline.sources import CorruptFileError, Rejected, get_source
from pipeline.sources.base import RAW_LIMIT


def run(name, path, relpath):
    return list(get_source(name).read(path, relpath=relpath))


def lines(*recs) -> bytes:
    return b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in recs)


GOOD = {"instruction": "Add two numbers.", "output": "def add(a, b):\n    return a + b"}


# -- bad records: the file goes on ------------------------------------------------------------------------
def test_each_bad_record_kind_is_rejected_and_named(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(lines(
        GOOD,
        b'{"instruction": "caf\xe9", "output": "x"}\n',                   # 2 invalid UTF-8
        b'{"instruction": "unterminated\n',                                # 3 malformed JSON
        {"instruction": "No output here."},                                # 4 missing field
        {"instruction": "Typed wrong.", "output": ["a", "list"]},          # 5 wrong type
        {"instruction": "Blank answer.", "output": "   "},                 # 6 empty text
        b'["an", "array"]\n',                                              # 7 not an object
        b"\n",                                                             # 8 blank line: not a record
        {**GOOD, "instruction": "Add three numbers."},                     # 9
    ))
    out = run("evol_codealpaca", p, "train.jsonl")
    docs = [x for x in out if isinstance(x, Document)]
    rej = [x for x in out if isinstance(x, Rejected)]
    assert [d.id for d in docs] == ["train.jsonl#1", "train.jsonl#9"]
    assert [(r.reason, r.detail.split(":")[1]) for r in rej] == [
        ("invalid_utf8", "2"), ("invalid_json", "3"), ("missing_field", "4"), ("wrong_type", "5"),
        ("empty_text", "6"), ("wrong_type", "7")]
    assert "field 'output' missing" in rej[2].detail
    assert "field 'output' is list, expected string" in rej[3].detail
    assert all(r.source == "evol_codealpaca" and r.raw for r in rej)


def test_raw_record_is_truncated(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(lines({"instruction": "x" * (3 * RAW_LIMIT)}))
    (r,) = run("evol_codealpaca", p, "train.jsonl")
    assert r.reason == "missing_field" and len(r.raw) == RAW_LIMIT + 1


def test_nested_field_wrong_type(tmp_path):
    p = tmp_path / "oasst_octopack.jsonl"
    p.write_bytes(lines({"conversations": [{"role": "user", "text": "hi"}, "oops"]},
                        {"conversations": [{"role": "user", "text": 3}]}))
    r1, r2 = run("oasst_octopack", p, "oasst_octopack.jsonl")
    assert r1.reason == "wrong_type" and "conversations[1]" in r1.detail
    assert r2.reason == "wrong_type" and "conversations[0].text" in r2.detail


def test_bool_is_not_an_int(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(lines({"problem": "p", "solution_wocode": "s", "template_id": True}))
    (r,) = run("templategsm", p, "data/1k/0000-0999/x.jsonl")
    assert r.reason == "wrong_type" and "template_id" in r.detail


# -- bad files: CorruptFileError naming the file and the fix ----------------------------------------------
@pytest.mark.parametrize("name,fname", [
    ("evol_codealpaca", "train.jsonl"), ("dolma_pes2o", "a.json.gz"), ("pile_rest", "00.jsonl.zst"),
    ("refinedweb", "a.parquet"), ("openhermes", "a.json")])
def test_empty_file(tmp_path, name, fname):
    p = tmp_path / fname
    p.write_bytes(b"")
    with pytest.raises(CorruptFileError) as e:
        run(name, p, fname)
    assert e.value.path == str(p)
    assert str(p) in str(e.value) and "empty" in str(e.value) and "download it again" in str(e.value)


def test_file_with_only_blank_lines(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(b"\n\n  \n")
    with pytest.raises(CorruptFileError, match="no records"):
        run("evol_codealpaca", p, "train.jsonl")


def test_missing_file_is_an_io_fault_not_a_corrupt_file(tmp_path):
    """A listed file that is gone is the disk's story (exit 2, "restore it, or run again"), not the data's:
    advice to "delete it and download it again" would make no sense for it."""
    with pytest.raises(OSError, match=r"nope.jsonl: no such file.*ENOENT.*run again") as e:
        run("evol_codealpaca", tmp_path / "nope.jsonl", "train.jsonl")
    assert not isinstance(e.value, CorruptFileError)


def _zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def test_truncated_zst_is_corrupt_after_the_good_records(tmp_path):
    data = lines(*({"text": f"document number {i} " * 20, "meta": {"pile_set_name": "Pile-CC"}}
                   for i in range(400)))
    p = tmp_path / "00.jsonl.zst"
    p.write_bytes(_zst(data)[:-200])
    out = []
    with pytest.raises(CorruptFileError, match="truncated") as e:
        for item in get_source("pile_rest").read(p, relpath="train/00.jsonl.zst"):
            out.append(item)
    assert str(p) in str(e.value)
    assert out and all(isinstance(x, Document) for x in out)  # the records before the cut came through


def test_zst_garbage_and_multiframe(tmp_path):
    p = tmp_path / "00.jsonl.zst"
    p.write_bytes(b"this is not zstd at all\n" * 10)
    with pytest.raises(CorruptFileError, match="not a valid zstd stream"):
        run("pile_rest", p, "train/00.jsonl.zst")
    recs = [{"text": f"t{i}", "meta": {"pile_set_name": "ArXiv"}} for i in range(6)]
    p.write_bytes(_zst(lines(*recs[:2])) + _zst(lines(*recs[2:5])) + _zst(lines(recs[5])))
    out = run("pile_arxiv", p, "train/00.jsonl.zst")
    assert [d.text for d in out] == [f"t{i}" for i in range(6)]
    assert [d.id for d in out] == [f"train/00.jsonl.zst#{i}" for i in range(1, 7)]


def test_truncated_and_invalid_gzip(tmp_path):
    data = gzip.compress(lines(*({"id": str(i), "text": "paper " * 50} for i in range(200))), mtime=0)
    p = tmp_path / "train-00000-of-00020.json.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="gzip"):
        run("dolma_pes2o", p, "data/v2/train-00000-of-00020.json.gz")
    p.write_bytes(b"plain text, not gzip\n")
    with pytest.raises(CorruptFileError, match="gzip"):
        run("dolma_pes2o", p, "data/v2/train-00000-of-00020.json.gz")


def test_parquet_with_another_schema(tmp_path):
    p = tmp_path / "train-00000-of-05534-x.parquet"
    pq.write_table(pa.table({"text": ["a"], "link": ["b"]}), p)
    with pytest.raises(CorruptFileError) as e:
        run("refinedweb", p, "data/train-00000-of-05534-x.parquet")
    msg = str(e.value)
    assert str(p) in msg and "missing ['content']" in msg and "'text', 'link'" in msg


def test_parquet_garbage_and_truncated(tmp_path):
    p = tmp_path / "a.parquet"
    p.write_bytes(b"PAR1 but then nothing that parquet would accept")
    with pytest.raises(CorruptFileError, match="not a readable parquet"):
        run("refinedweb", p, "data/a.parquet")
    pq.write_table(pa.table({"content": ["word " * 100] * 50}), p)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(CorruptFileError):
        run("refinedweb", p, "data/a.parquet")


def test_parquet_row_level_problems_are_records(tmp_path):
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"content": ["fine text", None, "  "], "url": ["u1", "u2", "u3"]}), p)
    out = run("refinedweb", p, "data/a.parquet")
    assert isinstance(out[0], Document) and out[0].id == "data/a.parquet#0"
    assert [(r.reason, r.detail) for r in out[1:]] == [
        ("missing_field", "data/a.parquet#row 1: field 'content' missing"),
        ("empty_text", "data/a.parquet#row 2: field 'content' is empty")]


def test_json_array_file(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}, 7')
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        run("openhermes", p, "openhermes2_5.json")
    p.write_text("[]")
    with pytest.raises(CorruptFileError, match="empty JSON array"):
        run("openhermes", p, "openhermes2_5.json")
    p.write_bytes(b'[{"conversations": []}, 7, {"conversations": [{"from": "human", "value": "caf\xe9"}]}]')
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        run("openhermes", p, "openhermes2_5.json")
    p.write_text('[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}, 7]')
    d, r = run("openhermes", p, "openhermes2_5.json")
    assert d.text == "User: hi\n\nAssistant: yo" and d.id == "openhermes2_5.json#0"
    assert r.reason == "wrong_type" and r.detail.startswith("openhermes2_5.json[1]")


def test_json_lines_under_a_json_name(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(lines({"id": "1", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}))
    (d,) = run("code290k_sharegpt", p, "Code-290k-ShareGPT.json")
    assert d.id == "1"


# -- the pile: unroutable records count against pile_rest ----------------------------------------------------
def test_pile_unroutable_records_go_to_pile_rest(tmp_path):
    p = tmp_path / "00.jsonl.zst"
    p.write_bytes(_zst(lines({"text": "wiki", "meta": {"pile_set_name": "Wikipedia (en)"}},
                             {"text": "no meta"}, {"text": "meta not a dict", "meta": "ArXiv"},
                             {"text": "meta without name", "meta": {}}, b"{broken\n",
                             {"text": "law", "meta": {"pile_set_name": "FreeLaw"}})))
    for member in ("pile_wikipedia", "pile_arxiv", "pile_rest"):
        out = run(member, p, "train/00.jsonl.zst")  # any member reads the whole group
        assert [(x.metadata["source"], x.text) for x in out if isinstance(x, Document)] == [
            ("pile_wikipedia", "wiki"), ("pile_rest", "law")]
        rej = [x for x in out if isinstance(x, Rejected)]
        assert [(r.source, r.reason) for r in rej] == [("pile_rest", "missing_field"), ("pile_rest", "wrong_type"),
                                                       ("pile_rest", "missing_field"), ("pile_rest", "invalid_json")]
    assert "meta.pile_set_name" in rej[2].detail


# -- oasst1 trees ---------------------------------------------------------------------------------------
def _oasst(tmp_path, rows):
    cols = ["message_id", "parent_id", "message_tree_id", "role", "text", "rank", "lang", "deleted",
            "review_result", "created_date"]
    schema = pa.schema([("message_id", pa.string()), ("parent_id", pa.string()), ("message_tree_id", pa.string()),
                        ("role", pa.string()), ("text", pa.string()), ("rank", pa.float64()), ("lang", pa.string()),
                        ("deleted", pa.bool_()), ("review_result", pa.bool_()), ("created_date", pa.string())])
    full = [dict(zip(cols, r + (None,) * (len(cols) - len(r)))) for r in rows]
    for r in full:
        r["lang"] = r["lang"] or "en"
        r["deleted"] = bool(r["deleted"])
        r["review_result"] = True if r["review_result"] is None else r["review_result"]
        r["created_date"] = r["created_date"] or "2023-03-01T00:00:00"
    p = tmp_path / "train.parquet"
    pq.write_table(pa.table({c: [r[c] for r in full] for c in cols}, schema=schema), p)
    return run("oasst", p, "data/train-00000-of-00001-x.parquet")


def test_oasst_follows_best_rank_and_skips_deleted(tmp_path):
    out = _oasst(tmp_path, [
        ("q1", None, "T", "prompter", "Question?"),
        ("a_bad", "q1", "T", "assistant", "Worse answer.", 1.0),
        ("a_del", "q1", "T", "assistant", "Deleted answer.", -1.0, None, True),
        ("a_good", "q1", "T", "assistant", "Best answer.", 0.0),
        ("q2", "a_good", "T", "prompter", "Follow-up?"),
        ("a2", "q2", "T", "assistant", "Second answer.", None),
        ("q3", "a2", "T", "prompter", "A last question nobody answered."),
        ("r2", None, "U", "prompter", "Lonely prompt."),
        ("x1", None, "V", "prompter", "Root one."), ("x2", None, "V", "prompter", "Root two."),
    ])
    docs = [x for x in out if isinstance(x, Document)]
    rej = [x for x in out if isinstance(x, Rejected)]
    (d,) = docs
    assert d.id == "T" and d.metadata["turns"] == 4
    assert d.text == "User: Question?\n\nAssistant: Best answer.\n\nUser: Follow-up?\n\nAssistant: Second answer."
    assert [r.reason for r in rej] == ["empty_conversation", "broken_tree"]


def test_oasst_review_failed_and_tie_break(tmp_path):
    out = _oasst(tmp_path, [
        ("q", None, "T", "prompter", "Q"),
        ("b", "q", "T", "assistant", "B", None, None, False, None, "2023-03-02"),
        ("a", "q", "T", "assistant", "A", None, None, False, None, "2023-03-01"),
        ("c", "q", "T", "assistant", "C (failed review)", 0.0, None, False, False),
    ])
    (d,) = out
    assert d.text.endswith("Assistant: A")  # unranked replies: the earliest; the review-failed one is skipped


def test_bom_and_crlf_are_not_errors(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n" + json.dumps(GOOD).encode() + b"\r\n")
    out = run("evol_codealpaca", p, "train.jsonl")
    assert [type(x) for x in out] == [Document, Document]


# -- the streaming JSON array reader ----------------------------------------------------------------------
def _conv(i, text):
    return {"id": str(i), "conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": f"a{i}"}]}


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_json_array_streams_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    import pipeline.sources.formats as formats

    monkeypatch.setattr(formats, "CHUNK_BYTES", chunk)
    recs = [_conv(i, "héllo wörld ✓ " * (i % 5 + 1)) for i in range(12)] + [12345, [1, 2], None]
    p = tmp_path / "Code-290k-ShareGPT.json"
    p.write_text("\ufeff  [\n" + ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n]\n",
                 encoding="utf-8")
    out = run("code290k_sharegpt", p, "Code-290k-ShareGPT.json")
    docs = [x for x in out if isinstance(x, Document)]
    assert [d.id for d in docs] == [str(i) for i in range(12)]
    assert docs[3].text == f"User: {'héllo wörld ✓ ' * 4}".rstrip() + "\n\nAssistant: a3"
    assert [(r.reason, r.detail) for r in out if isinstance(r, Rejected)] == [
        ("wrong_type", "Code-290k-ShareGPT.json[12]: record is a JSON int, expected an object"),
        ("wrong_type", "Code-290k-ShareGPT.json[13]: record is a JSON list, expected an object"),
        ("wrong_type", "Code-290k-ShareGPT.json[14]: record is a JSON NoneType, expected an object")]


@pytest.mark.parametrize("body,what", [
    ('[{"a": 1}, {"a": 2}', "unexpected end of file"),
    ('[{"a": 1} {"a": 2}]', "expected ',' or ']'"),
    ('[{"a": 1}, {"a": tru}]', "Expecting value"),
    ('[{"a": 1}]\n{"b": 2}', "trailing data"),
    ('[{"a": 1}, ]', "Expecting value"),
])
def test_json_array_corruption_is_named(tmp_path, monkeypatch, body, what):
    import pipeline.sources.formats as formats

    monkeypatch.setattr(formats, "CHUNK_BYTES", 5)
    p = tmp_path / "openhermes2_5.json"
    p.write_text(body)
    with pytest.raises(CorruptFileError, match="not valid JSON") as e:
        run("openhermes", p, "openhermes2_5.json")
    assert what in str(e.value) and str(p) in str(e.value)


def test_parquet_invalid_utf8_rejects_only_that_row(tmp_path, monkeypatch):
    """Parquet writers do not validate strings: a bad one costs its row, not the file."""
    import numpy as np

    import pipeline.sources.formats as formats

    monkeypatch.setattr(formats, "PARQUET_BATCH_ROWS", 2)
    data = b"good onecaf\xe9 au laitgood three"
    offsets = np.array([0, 8, 20, 30], dtype=np.int32)
    content = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"content": content, "url": ["u0", "u1", "u2"]}), p)
    out = run("refinedweb", p, "data/a.parquet")
    assert [x.text if isinstance(x, Document) else x.reason for x in out] == ["good one", "invalid_utf8", "good three"]
    assert out[1].detail == "data/a.parquet#row 1: invalid UTF-8 in field 'content' (byte 3)"
    assert "u1" in out[1].raw
    assert out[2].id == "data/a.parquet#2"
