"""Helpers of the alignment-data tests: a corpus-style tokenizer, a SentencePiece-style one, and the chat corpus
built by ``make corpus CORPUS=chat_sample`` into a test folder.

    tok_path = byte_bpe_tokenizer(tmp / "tok.json")     # what the tokenizer stage trains: byte-level BPE
    sp_path = metaspace_tokenizer(tmp / "sp.json")       # Llama-style: "▁" word marks, byte fallback
    r, shards = make_chat_corpus(root, tok_path)         # the documented command, offline; (process, shards dir)

Both tokenizers have ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2 and are trained here on the alignment samples'
text (a second or two), so the tests need no built corpus.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALIGNMENT = ["sft_ultrachat", "sft_airoboros", "sft_code_feedback", "sft_orca_math", "sft_systemchat",
             "sft_capybara", "dpo_ultrafeedback"]


def sample_texts() -> list[str]:
    """The alignment samples' documents (the conversations rendered with </s>)."""
    from pipeline.sources import SAMPLES_DIR, Rejected, get_source

    out = []
    for name in ALIGNMENT:
        spec = get_source(name)
        for path, rel in spec.local_files(SAMPLES_DIR):
            out += [d.text for d in spec.read(path, relpath=rel) if not isinstance(d, Rejected)]
    return out


def byte_bpe_tokenizer(path: Path, vocab_size: int = 1024) -> Path:
    from pipeline.stages.tokenizer import train_bpe

    train_bpe(iter(sample_texts()), vocab_size).save(str(path))
    return path


def metaspace_tokenizer(path: Path, vocab_size: int = 1024) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # a newline stands alone, as Llama's byte-fallback <0x0A> does; words carry their "▁" as in SentencePiece
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", behavior="isolated"),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", *bytes_],
                                  show_progress=False)
    tok.train_from_iterator(sample_texts(), trainer=trainer)
    tok.save(str(path))
    return path


def hf_tokenizer(path: Path):
    """transformers' fast tokenizer on that file, with the chat template the export writes."""
    from transformers import PreTrainedTokenizerFast

    from jetmoe_core.chat import CHAT_TEMPLATE

    return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   chat_template=CHAT_TEMPLATE)


def make_chat_corpus(root: Path, tokenizer: Path, *extra: str, timeout: int = 600):
    """Run ``make corpus CORPUS=chat_sample`` (the documented command) with its work and shards folders under
    ``root`` and ``tokenizer`` as the base model's tokenizer. Returns (completed process, shards folder)."""
    make = shutil.which("make")
    assert make, "make is needed for `make corpus`"
    venv = Path(sys.prefix)  # the environment running the tests; -o: do not (re)install it
    shards = root / "shards"
    args = f"--tokenizer.path={tokenizer} --corpus.work_dir={root / 'work'} --corpus.shards_dir={shards}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([make, "-o", f"{venv}/.installed", "corpus", "CORPUS=chat_sample", f"VENV={venv}",
                        f"ARGS={args} {' '.join(extra)}".strip()], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return r, shards
