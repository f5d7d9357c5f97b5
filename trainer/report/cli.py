"""The `python -m trainer report` command: draws the plots, writes index.html, prints what it wrote.

    main(["--run", "runs/tiny", "--corpus", "shards/sample", "--out", "reports/tiny"])  # → exit status
    main(["--run", "runs/tiny"])        # the same: the run's own corpus, reports/<run name>

Exit status 0 when written; 2 with one `error:` line naming the file and the fix when an input is missing
or malformed, or the output folder cannot be written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jetmoe_core.io import IOFault

from . import align_plots, corpus_plots, run_plots
from .data import corpus_table, load_manifest, load_run, mixture_plans, phase_summary
from .html import write_html


def own_corpus(run) -> str | None:
    """The corpus the run's saved config names, if it is there to read (else the page leaves it out and says
    so on stderr)."""
    corpus = (run.config or {}).get("data", {}).get("corpus")
    if corpus and (Path(corpus) / "manifest.json").is_file():
        return corpus
    if corpus:
        print(f"note: the run's corpus {corpus} has no manifest.json here: the page shows the run alone (give "
              f"--corpus to draw one)", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    from trainer.report import __doc__ as doc

    p = argparse.ArgumentParser(prog="python -m trainer report", description=doc.split("\n\n")[0],
                                epilog="example: python -m trainer report --run runs/tiny --corpus shards/sample "
                                       "--out reports/tiny")
    p.add_argument("--run", help="run folder (holds metrics.jsonl), e.g. runs/tiny")
    p.add_argument("--corpus", help="corpus folder (holds manifest.json), e.g. shards/sample")
    p.add_argument("--sft", help="SFT run folder (python -m trainer sft), e.g. runs/tiny-sft")
    p.add_argument("--dpo", help="DPO run folder (python -m trainer dpo), e.g. runs/tiny-dpo")
    p.add_argument("--out", help="folder for the PNGs and index.html (default: reports/<run name>, or "
                                 "reports/<corpus name> for a corpus alone, or reports/<SFT or DPO run name>)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not (args.run or args.corpus or args.sft or args.dpo):
        p.error("give --run, --corpus, --sft or --dpo (any of them together)")
    written: list[tuple[str, Path, str]] = []
    run = rows = manifest = None
    plans, summary = [], []
    try:
        if args.run:
            run = load_run(Path(args.run))
            if not args.corpus:  # the run's own corpus, as its saved config names it
                args.corpus = own_corpus(run)
        out = Path(args.out or Path("reports") / Path(args.run or args.corpus or args.sft or args.dpo).resolve().name)
        if run is not None:
            summary = phase_summary(run)
            plans = mixture_plans(run, args.corpus)
            n_val = len({s for r in run.val for s in r["loss"]})
            written += [
                ("run", run_plots.plot_loss(run, out / "loss.png"),
                 f"{len(run.train)} steps, phases {run.phases}, val mean and {n_val} val sources"),
                ("run", run_plots.plot_lr(run, out / "lr.png"),
                 f"lr {min(r['lr'] for r in run.train):.3g} .. {max(r['lr'] for r in run.train):.3g}"),
                ("run", run_plots.plot_expert_load(run, out / "expert_load.png"),
                 run_plots.describe_experts(run_plots.expert_counts(run.train))),
                ("run", run_plots.plot_mixture(run, out / "mixture.png"),
                 f"{len(run_plots.drawn_tokens(run))} sources drawn"),
            ]
        if args.sft:
            sft = align_plots.load_align_run(Path(args.sft), "sft")
            written.append(("sft", align_plots.plot_sft(sft, out / "sft_loss.png"),
                            f"{len(sft.train)} steps, loss {sft.train[0]['lm_loss']:.4f} → "
                            f"{sft.train[-1]['lm_loss']:.4f}"))
        if args.dpo:
            dpo = align_plots.load_align_run(Path(args.dpo), "dpo")
            written.append(("dpo", align_plots.plot_dpo(dpo, out / "dpo_rewards.png"),
                            f"{len(dpo.train)} steps, margin {dpo.train[-1]['margins']:.4g}, "
                            f"accuracy {dpo.train[-1]['accuracy']:.3f} at the last step"))
        if args.corpus:
            manifest = load_manifest(Path(args.corpus))
            rows = corpus_table(manifest)
            name = str(manifest.get("corpus") or Path(args.corpus).name)
            written += [
                ("corpus", corpus_plots.plot_corpus_tokens(rows, name, out / "corpus_tokens.png"),
                 f"{len(rows)} sources, {sum(r['train_tokens'] + r['val_tokens'] for r in rows):,} tokens"),
                ("corpus", corpus_plots.plot_corpus_drops(rows, name, out / "corpus_drops.png"),
                 f"{sum(r['docs_in'] - r['kept'] for r in rows):,} of {sum(r['docs_in'] for r in rows):,} "
                 "documents removed"),
                ("corpus", corpus_plots.plot_corpus_dedup(rows, name, out / "corpus_dedup.png"),
                 f"{sum(r['dedup_n'] for r in rows):,} duplicates removed"),
            ]
        html = write_html(out / "index.html", run=run, summary=summary, plans=plans, manifest=manifest,
                          rows=rows, corpus_dir=args.corpus, images=[p for _, p, _ in written])
        written.append(("page", html, f"{len(written)} plots, sections: "
                        + ", ".join(t for t, ok in (("run summary", run), ("alignment", args.sft or args.dpo),
                                                    ("mixture plan", any(p.rows for p in plans)),
                                                    ("corpus accounting", rows),
                                                    ("fidelity", "fidelity" in (manifest or {}))) if ok)))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {IOFault.from_os_error(e, 'writing the report', e.filename or args.out)}", file=sys.stderr)
        return 2
    for plan in plans:
        for note in plan.notes:
            print(f"note: phase {plan.phase}: {note}", file=sys.stderr)
    w = max(len(str(path)) for _, path, _ in written)
    print(f"{'from':<7} {'file':<{w}}  content")
    for kind, path, what in written:
        print(f"{kind:<7} {str(path):<{w}}  {what}")
    return 0
