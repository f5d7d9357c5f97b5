"""Read sources from a local mirror and print what comes out: a check of a download or of the samples.

    python -m pipeline.sources                       # every source, from the embedded samples
    python -m pipeline.sources refinedweb pile_arxiv # some sources
    python -m pipeline.sources --root /data/hub      # a mirror laid out as <root>/<repo_id>/<path in repo>
    python -m pipeline.sources --list                # the catalog: hub id, revision, format, patterns
    python -m pipeline.sources --show 2 oasst        # also print the first 2 documents of each source

Reads every matching file once per input group (the four Pile sources share one pass) and prints one
row per source: files, documents, text size, rejected records by reason. Exit status 1 if a file is
corrupt or a source has no files.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.sources import SAMPLES_DIR, SOURCES, CorruptFileError, Rejected, input_groups


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="sources (default: all)")
    ap.add_argument("--root", type=Path, default=SAMPLES_DIR, help="local mirror root (default: the samples)")
    ap.add_argument("--list", action="store_true", help="print the catalog and exit")
    ap.add_argument("--show", type=int, default=0, metavar="N", help="print the first N documents per source")
    args = ap.parse_args(argv)
    names = args.names or list(SOURCES)

    if args.list:
        print(f"{'source':<20} {'family':<6} {'format':<9} {'hub id':<40} {'revision':<12} patterns")
        for n in names:
            s = SOURCES[n]
            print(f"{n:<20} {s.family:<6} {s.file_format:<9} {s.repo_id:<40} {s.revision[:10]:<12} "
                  f"{' '.join(s.allow_patterns)}")
        return 0

    from tqdm import tqdm

    stats: dict[str, dict] = defaultdict(lambda: {"files": 0, "docs": 0, "chars": 0, "rejected": Counter()})
    shown: Counter = Counter()
    failed = []
    groups = input_groups(names)
    wanted = set(names)
    for key, members in groups.items():
        spec = members[0]
        files = spec.local_files(args.root)
        for m in members:
            stats[m.name]["files"] = len(files)
        for path, rel in tqdm(files, desc=key, unit="file", leave=False):
            try:
                for item in spec.read(path, relpath=rel):
                    src = item.source if isinstance(item, Rejected) else item.metadata["source"]
                    if src not in wanted:
                        continue
                    st = stats[src]
                    if isinstance(item, Rejected):
                        st["rejected"][item.reason] += 1
                    else:
                        st["docs"] += 1
                        st["chars"] += len(item.text)
                        if shown[src] < args.show:
                            shown[src] += 1
                            print(f"--- {src} {item.id}\n{item.text[:800]}\n")
            except CorruptFileError as e:
                failed.append(str(e))
    print(f"{'source':<20} {'files':>5} {'docs':>7} {'text MB':>8}  rejected")
    for n in names:
        st = stats[n]
        rej = ", ".join(f"{r} {c}" for r, c in sorted(st["rejected"].items())) or "-"
        print(f"{n:<20} {st['files']:>5} {st['docs']:>7} {st['chars'] / 1e6:>8.3f}  {rej}")
        if st["files"] == 0:
            failed.append(f"{n}: no files under {args.root / SOURCES[n].repo_id} match {SOURCES[n].allow_patterns}")
    for f in failed:
        print(f"ERROR {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
