"""Rebuild the embedded sample corpus: a small local mirror of every hub dataset the recipe reads.

    python -m tools.make_samples                        # rebuild every source's files in pipeline/samples/
    python -m tools.make_samples --only stackmathqa xp3x
    python -m tools.make_samples --out /tmp/s --check   # rebuild elsewhere, compare with the committed files

Each file sits at ``pipeline/samples/<repo_id>/<path in repo>`` with the hub's file name, format and columns,
the repo id taken from the source's spec (``pipeline.sources``), so the real readers read it unchanged. The
text is made from material on every Python install (``tools.samples.material``: the standard library's
docstrings and sources, the reference manual's topics, numpy's docstrings) plus short non-English passages
written for the samples. It is deliberately dirty in the ways the corpus stages must handle: exact and near
duplicates, boilerplate, very short documents, non-English text, and a few malformed records (invalid JSON,
invalid UTF-8, missing fields, wrong types). Corrupt *files* are never shipped (the demo build must
succeed); the tests make those.

Deterministic: a fixed seed per source, sorted inputs, gzip with mtime 0, single-threaded zstd. The bytes
depend on the Python version whose standard library is read and on the numpy, pyarrow and zstandard versions
(the committed files were made with CPython 3.11.7, numpy 2.4.6, pyarrow 26, zstandard 0.25); ``--check``
tells whether this machine reproduces them.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python tools/make_samples.py): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.sources import SAMPLES_DIR  # noqa: E402
from tools.samples.alignment import (make_airoboros, make_capybara, make_code_feedback, make_orca_math,  # noqa: E402
                                     make_systemchat, make_ultrafeedback)
from tools.samples.chat import (make_code290k, make_commitpackft, make_evol_codealpaca, make_magicoder,  # noqa: E402
                                make_oasst, make_octopack, make_openhermes, make_stackmathqa, make_templategsm,
                                make_ultrachat, make_xp3x)
from tools.samples.code import make_algebraic_stack, make_starcoder  # noqa: E402
from tools.samples.web import (make_openwebmath, make_pes2o, make_pile, make_refinedweb,  # noqa: E402
                               make_ultratextbooks)

MAKERS = {
    "refinedweb": make_refinedweb, "starcoder": make_starcoder, "dolma_pes2o": make_pes2o, "pile": make_pile,
    "algebraic_stack": make_algebraic_stack, "openwebmath": make_openwebmath, "stackmathqa": make_stackmathqa,
    "templategsm": make_templategsm, "oasst": make_oasst, "oasst_octopack": make_octopack, "xp3x": make_xp3x,
    "commitpackft": make_commitpackft, "openhermes": make_openhermes, "ultratextbooks": make_ultratextbooks,
    "ultrachat": make_ultrachat, "magicoder": make_magicoder, "evol_codealpaca": make_evol_codealpaca,
    "code290k_sharegpt": make_code290k,
    # the alignment sets (sft_ultrachat reads the ultrachat maker's file)
    "sft_airoboros": make_airoboros, "sft_code_feedback": make_code_feedback, "sft_orca_math": make_orca_math,
    "sft_systemchat": make_systemchat, "sft_capybara": make_capybara, "dpo_ultrafeedback": make_ultrafeedback,
}
#: the makers that read neither the stdlib sources nor the docstrings (fast: used by the tests)
LIGHT = ("stackmathqa", "templategsm", "sft_airoboros", "sft_code_feedback", "sft_orca_math", "sft_systemchat",
         "sft_capybara", "dpo_ultrafeedback")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=SAMPLES_DIR,
                    help="mirror root to write (default: pipeline/samples)")
    ap.add_argument("--only", nargs="+", choices=sorted(MAKERS), help="rebuild only these makers")
    ap.add_argument("--check", action="store_true", help="compare what was written with pipeline/samples")
    args = ap.parse_args(argv)
    names = args.only or list(MAKERS)
    from tqdm import tqdm

    before = {p for p in args.out.rglob("*") if p.is_file()} if args.check else set()
    for name in tqdm(names, desc="samples", unit="source"):
        MAKERS[name](args.out)
    files = sorted(p for p in args.out.rglob("*") if p.is_file() and p.suffix != ".py" and p not in before
                   and "__pycache__" not in p.parts)
    print(f"\n{'file':<100} {'bytes':>10}")
    for p in files:
        print(f"{p.relative_to(args.out).as_posix():<100} {p.stat().st_size:>10,}")
    print(f"{'total':<100} {sum(p.stat().st_size for p in files):>10,}")
    if args.check:
        bad = [p for p in files if not (SAMPLES_DIR / p.relative_to(args.out)).is_file()
               or not filecmp.cmp(p, SAMPLES_DIR / p.relative_to(args.out), shallow=False)]
        for p in bad:
            print(f"DIFFERS: {p.relative_to(args.out)}", file=sys.stderr)
        print("check:", "identical to the committed samples" if not bad else f"{len(bad)} files differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
