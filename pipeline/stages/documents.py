"""Reading and writing the documents that pass between stages (datatrove JSONL, gzip without timestamps).

    from pipeline.stages.documents import docs_reader, docs_writer, n_input_files
    src = stage.input_dir("filter")
    Job("dedup", [docs_reader(src), ..., docs_writer(stage.output_dir)], tasks=n_input_files(src))

Contract: a stage's documents are ``<stage dir>/<rank>.jsonl.gz`` written by ``docs_writer`` (one file per
task, gzip with a zero timestamp, so the same input gives the same bytes); ``docs_reader`` reads exactly those
(the glob keeps ``_logs/``, ``_rejects/`` and ``_DONE.json`` out) and treats a folder without any as an empty
input, so a source whose every document was dropped upstream flows on with zero documents.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from pipeline.stages.base import GZIP

__all__ = ["DocsReader", "docs_reader", "docs_writer", "n_input_files"]


class DocsReader(JsonlReader):
    """datatrove's JsonlReader, except that an input folder with no files is an empty input, not an error."""

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if not self.data_folder.list_files(glob_pattern=self.glob_pattern, recursive=self.recursive):
            return
        yield from super().run(data, rank, world_size)


def docs_reader(folder: Path) -> JsonlReader:
    # add_file_path would store absolute paths in metadata: outputs must not depend on where the tree lives
    Path(folder).mkdir(parents=True, exist_ok=True)
    return DocsReader(str(folder), glob_pattern="*.jsonl.gz", recursive=False, add_file_path=False)


def docs_writer(folder: Path) -> JsonlWriter:
    return JsonlWriter(str(folder), output_filename="${rank}.jsonl.gz", compression=GZIP)


def n_input_files(folder: Path) -> int:
    """One task per input file (the previous stage wrote one per task); 1 before the input exists."""
    return max(1, len(list(Path(folder).glob("*.jsonl.gz"))))
