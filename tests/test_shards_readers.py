"""The shards open with the tools users have: pyarrow, polars (read_ipc / scan_ipc), duckdb (through a
pyarrow dataset) and Hugging Face datasets (``load_dataset("arrow", ...)``), all giving the same tokens."""
import json

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.ipc as ipc
import pytest


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    root = tiny_corpus
    man = json.loads((root / "manifest.json").read_text())
    paths = [str(root / p["path"]) for p in man["sources"]["weba"]["splits"]["train"]["parts"]]
    with pa.memory_map(paths[0]) as f:
        want = ipc.open_file(f).read_all().column("input_ids").to_pylist()
    return root, paths, want


def test_pyarrow_three_lines(corpus):
    _, paths, want = corpus
    with pa.memory_map(paths[0]) as f:
        table = pa.ipc.open_file(f).read_all()
    assert table.column("input_ids").to_pylist() == want


def test_polars(corpus):
    pl = pytest.importorskip("polars")
    _, paths, want = corpus
    assert pl.read_ipc(paths[0])["input_ids"].to_list() == want
    lazy = pl.scan_ipc(paths[0]).select(pl.col("n_tokens").sum()).collect()
    assert lazy.item() == sum(len(x) for x in want)


def test_duckdb_through_pyarrow_dataset(corpus):
    duckdb = pytest.importorskip("duckdb")
    _, paths, want = corpus
    dataset = ds.dataset(paths, format="arrow")  # noqa: F841  (duckdb finds it by name)
    n_docs, n_tok = duckdb.sql("SELECT count(*), sum(n_tokens) FROM dataset").fetchall()[0]
    total = sum(pa.ipc.open_file(pa.memory_map(p)).read_all().num_rows for p in paths)
    assert n_docs == total and n_tok >= sum(len(x) for x in want)


def test_hf_datasets_load_dataset_arrow(corpus, tmp_path):
    datasets = pytest.importorskip("datasets")
    _, paths, want = corpus
    d = datasets.load_dataset("arrow", data_files={"train": paths[:1]}, split="train", cache_dir=str(tmp_path))
    assert d["input_ids"][: len(want)] == want
