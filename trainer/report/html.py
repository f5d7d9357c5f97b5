"""The report's one page, `index.html`, beside the PNGs it shows.

    write_html(out / "index.html", run=run, summary=phase_summary(run), plans=mixture_plans(run, corpus),
               manifest=manifest, rows=corpus_table(manifest), corpus_dir="shards/sample", images=[...png paths])

Contract: self-contained and offline: images by relative name (they sit in the same folder), CSS inline, no
scripts, no fonts or links to fetch. Every string taken from the inputs is HTML-escaped. Tables carry ids
(`run-summary`, `plan-phase<N>`, `corpus-accounting`, `fidelity`), one <tbody> row per phase / source and
the totals in <tfoot>, so a test can count them. No date is written: the same inputs give the same page.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from jetmoe_core.io import write_text_atomic
from trainer.data.plan import human

from .data import DEDUP_KINDS

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:0 24px 48px;color:#1d1d1f}
h1{font-size:24px;margin:24px 0 4px}h2{font-size:19px;margin:36px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px}h3{font-size:15px;margin:22px 0 6px}
.meta{color:#666;margin:0 0 8px}nav a{margin-right:16px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #e6e6e6;text-align:left;vertical-align:top}
th{background:#f4f4f6;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tfoot td{font-weight:600;border-top:2px solid #bbb}
.warn{color:#b00000}.note{color:#7a5500;background:#fff8e6;padding:6px 10px;border-radius:4px}
details summary{cursor:pointer}details ul{margin:4px 0;padding-left:18px}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:13px}
"""


class Html(str):
    """Markup already escaped (a cell that holds tags)."""


def _cell(v) -> str:
    return v if isinstance(v, Html) else escape(str(v))


def _table(tid: str, head: list[str], body: list[list], foot: list[list] | None = None,
           numeric: set[int] = frozenset()) -> str:
    def row(cells, tag="td"):
        return "<tr>" + "".join(f'<{tag}{" class=n" if i in numeric else ""}>{_cell(c)}</{tag}>'
                                for i, c in enumerate(cells)) + "</tr>"
    out = [f'<table id="{escape(tid)}">', "<thead>" + row(head, "th") + "</thead>", "<tbody>"]
    out += [row(r) for r in body] + ["</tbody>"]
    if foot:
        out += ["<tfoot>"] + [row(r) for r in foot] + ["</tfoot>"]
    return "\n".join(out + ["</table>"])


def _reasons(counts: dict[str, int]) -> Html:
    """'n' with the reasons, largest first, in a <details> list."""
    n = sum(counts.values())
    if not counts:
        return Html("0")
    items = "".join(f"<li>{escape(k)}: {v:,}</li>" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return Html(f"<details><summary>{n:,}</summary><ul>{items}</ul></details>")


def _f(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{escape(path.name)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


CAPTIONS = {
    "loss.png": "Train loss and the val mean (left); val loss per source, labelled at the line ends (right).",
    "lr.png": "Learning rate per step: warmup, stable, decay; phases shaded.",
    "expert_load.png": "Share of each layer's routed tokens per expert over time; white = balanced (1/E).",
    "mixture.png": "Target vs realised share of tokens per source, per phase (log axis).",
    "sft_loss.png": "SFT: train loss on the assistant tokens (per step and smoothed) and the val mean over the SFT "
                    "sources.",
    "dpo_rewards.png": "DPO: chosen and rejected rewards β·(log π − log π_ref) and their margin (left); the DPO "
                       "loss and the preference accuracy (right); val as open markers.",
    "corpus_tokens.png": "Train and val tokens per source (log axis).",
    "corpus_drops.png": "What became of each source's documents: kept, filtered by reason, rejected, duplicate.",
    "corpus_dedup.png": "Duplicates removed per source, by exact / MinHash / cross-source deduplication.",
}


def _run_section(run, summary: list[dict], images: dict[str, Path]) -> list[str]:
    head = ["phase", "steps", "tokens", "train LM loss first → last", "val mean first → last", "val sources",
            "compute time (sum of step times)", "throughput (tokens/s)", "MFU (median)"]
    body = [[s["phase"], f"{s['step_first']} → {s['step_last']} ({s['steps']})", _f(s["tokens"], ","),
             f"{s['train_first']:.4f} → {s['train_last']:.4f}",
             f"{_f(s['val_first'], '.4f')} → {_f(s['val_last'], '.4f')}", s["n_val_sources"],
             "–" if s["compute_s"] is None else f"{s['compute_s']:.1f} s", _f(s["tokens_per_s"], ",.0f"),
             "–" if s["mfu"] is None else f"{100 * s['mfu']:.1f}%"] for s in summary]
    foot = None
    if summary:
        a, b = summary[0], summary[-1]
        toks = None if any(s["tokens"] is None for s in summary) else sum(s["tokens"] for s in summary)
        secs = None if any(s["compute_s"] is None for s in summary) else sum(s["compute_s"] for s in summary)
        foot = [["run", f"{a['step_first']} → {b['step_last']} ({sum(s['steps'] for s in summary)})", _f(toks, ","),
                 f"{a['train_first']:.4f} → {b['train_last']:.4f}",
                 f"{_f(a['val_first'], '.4f')} → {_f(b['val_last'], '.4f')}", b["n_val_sources"],
                 "–" if secs is None else f"{secs:.1f} s", "–" if not (toks and secs) else f"{toks / secs:,.0f}", ""]]
    out = [f'<section id="run"><h2>Run {escape(run.name)}</h2>',
           f'<p class="meta">{escape(str(run.path))}/metrics.jsonl'
           + (f"; run config from {escape(str(run.config_from))}" if run.config_from else "") + "</p>",
           _table("run-summary", head, body, foot, numeric={2, 5, 6, 7, 8})]
    out += [_figure(images[n], CAPTIONS[n]) for n in ("loss.png", "lr.png", "expert_load.png") if n in images]
    return out + ["</section>"]


def _plan_section(plans, images: dict[str, Path], corpus_dir) -> list[str]:
    out = ['<section id="mixture"><h2>Mixture plan</h2>',
           '<p class="meta">Per phase, as <code>python -m trainer plan</code> computes it'
           + (f" on {escape(str(corpus_dir))}" if corpus_dir else "")
           + ": target share, tokens planned, epochs (tokens planned ÷ train tokens available); and the share "
             "the run actually drew.</p>"]
    if "mixture.png" in images:
        out.append(_figure(images["mixture.png"], CAPTIONS["mixture.png"]))
    head = ["source", "group", "weight", "target share", "tokens planned", "train tokens available", "epochs",
            "realised share"]
    for plan in plans:
        out.append(f"<h3>Phase {plan.phase}: {escape(plan.mixture)}"
                   + (f", {escape(human(plan.tokens))} tokens" if plan.tokens else "") + "</h3>")
        out += [f'<p class="note">{escape(n)}</p>' for n in plan.notes]
        if not plan.rows:
            continue
        body = [[r.source, r.group or "–", f"{r.weight:g}", f"{100 * r.share:.2f}%", f"{r.tokens_drawn:,}",
                 f"{r.tokens_available:,}",
                 Html(f'<span class="warn">{r.epochs:.2f} (over max_epochs {plan.max_epochs:g})</span>')
                 if r.over_limit else f"{r.epochs:.2f}",
                 f"{100 * plan.realised.get(r.source, 0.0):.2f}%"] for r in plan.rows]
        extra = sorted(set(plan.realised) - {r.source for r in plan.rows})
        body += [[s, "–", "0", "0.00%", "0", "–", "–", f"{100 * plan.realised[s]:.2f}%"] for s in extra]
        foot = [["total", "", "", f"{100 * sum(r.share for r in plan.rows):.2f}%",
                 f"{sum(r.tokens_drawn for r in plan.rows):,}", f"{sum(r.tokens_available for r in plan.rows):,}",
                 "", f"{100 * sum(plan.realised.values()):.2f}%"]]
        out.append(_table(f"plan-phase{plan.phase}", head, body, foot, numeric={2, 3, 4, 5, 6, 7}))
    return out + ["</section>"]


def _corpus_section(manifest: dict, rows: list[dict], corpus_dir, images: dict[str, Path]) -> list[str]:
    name = str(manifest.get("corpus") or Path(str(corpus_dir)).name)
    head = ["source", "docs in", "kept", "filtered", "rejected"] + [f"duplicate: {k}" for k in DEDUP_KINDS[:3]] \
        + ["train tokens", "val tokens"]
    has_other = any(r["dedup"].get("other dedup") for r in rows)
    if has_other:
        head.insert(8, "duplicate: other")

    def line(r):
        cells = [r["source"], f"{r['docs_in']:,}", f"{r['kept']:,}", _reasons(r["dropped"]), _reasons(r["rejected"])]
        cells += [f"{r['dedup'].get(k, 0):,}" for k in DEDUP_KINDS[:3 + has_other]]
        return cells + [f"{r['train_tokens']:,}", f"{r['val_tokens']:,}"]

    total = {"source": "total", "docs_in": sum(r["docs_in"] for r in rows), "kept": sum(r["kept"] for r in rows),
             "dedup": {k: sum(r["dedup"].get(k, 0) for r in rows) for k in DEDUP_KINDS},
             "train_tokens": sum(r["train_tokens"] for r in rows), "val_tokens": sum(r["val_tokens"] for r in rows)}
    for kind in ("dropped", "rejected"):
        total[kind] = {}
        for r in rows:
            for k, v in r[kind].items():
                total[kind][k] = total[kind].get(k, 0) + v
    out = [f'<section id="corpus"><h2>Corpus {escape(name)}</h2>',
           f'<p class="meta">{escape(str(corpus_dir))}/manifest.json: every document that entered is kept, filtered '
           "(a quality filter's reason), rejected (malformed input) or removed as a duplicate; click a count for "
           "its reasons.</p>",
           _table("corpus-accounting", head, [line(r) for r in rows], [line(total)],
                  numeric=set(range(1, len(head))))]
    out += [_figure(images[n], CAPTIONS[n]) for n in ("corpus_tokens.png", "corpus_drops.png", "corpus_dedup.png")
            if n in images]
    if "fidelity" in manifest:
        out += ["<h3>Fidelity</h3>",
                '<p class="meta">share of each source\'s documents the build removed, per stage, against the '
                "corpus config's [fidelity] threshold</p>",
                _fidelity(manifest["fidelity"], manifest, [r["source"] for r in rows])]
    return out + ["</section>"]


def _pct(v) -> str:
    return "–" if not v else f"{v:.1%}"


def _fidelity(fid, manifest: dict, order: list[str]) -> str:
    """The manifest's `fidelity` entry. The corpus builder's rows ({source: {docs_in, kept, removed_share,
    <stage>_share, top_rule, top_rule_share, threshold, status}}) become one row per source in the corpus
    table's order, the stages in their accounting order and shares in percent; any other table shape,
    {row: {column: value}} or [{column: value}], is shown as it is, anything else as its JSON."""
    if isinstance(fid, dict) and fid and all(isinstance(v, dict) and "removed_share" in v and "docs_in" in v
                                             for v in fid.values()):
        chain = [a.get("stage") for src in (manifest.get("sources") or {}).values()
                 for a in src.get("accounting", []) if isinstance(a, dict)]
        keys = {k[:-len("_share")] for v in fid.values() for k in v if k.endswith("_share")}
        stages = [st for st in dict.fromkeys(chain) if st in keys]
        stages += sorted(keys - set(stages) - {"removed", "top_rule"})
        head = ["source", "docs in", "kept", "removed", *stages, "top rule", "threshold", "status"]
        body = []
        for name in [n for n in order if n in fid] + [n for n in fid if n not in order]:
            r = fid[name]
            top = f"{r['top_rule']} ({_pct(r.get('top_rule_share'))})" if r.get("top_rule") else ""
            status = str(r.get("status", ""))
            body.append([name, f"{r['docs_in']:,}", f"{r.get('kept', 0):,}", _pct(r["removed_share"]),
                         *(_pct(r.get(f"{st}_share")) for st in stages), top, _pct(r.get("threshold")),
                         status if status == "ok" else Html(f'<span class="warn">{escape(status)}</span>')])
        return _table("fidelity", head, body, numeric=set(range(1, 4 + len(stages))) | {len(head) - 2})
    if isinstance(fid, dict) and fid and all(isinstance(v, dict) for v in fid.values()):
        rows = [{"": k, **v} for k, v in fid.items()]
    elif isinstance(fid, list) and fid and all(isinstance(v, dict) for v in fid):
        rows = fid
    else:
        return f"<pre>{escape(json.dumps(fid, indent=1, sort_keys=True))}</pre>"
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else ("" if v is None else v)
    return _table("fidelity", cols, [[fmt(r.get(c)) for c in cols] for r in rows])


def write_html(path: Path, *, run=None, summary=(), plans=(), manifest=None, rows=None, corpus_dir=None,
               images=()) -> Path:
    images = {Path(p).name: Path(p) for p in images}
    corpus_name = str((manifest or {}).get("corpus") or "")
    align = [n for n in ("sft_loss.png", "dpo_rewards.png") if n in images]
    title = "Report: " + ", ".join(x for x in (f"run {run.name}" if run else "", "alignment" if align else "",
                                               f"corpus {corpus_name}" if manifest else "") if x)
    sections = [("run", "Run", run is not None), ("align", "Alignment", bool(align)),
                ("mixture", "Mixture plan", bool(plans)),
                ("corpus", "Corpus", manifest is not None)]
    body = [f"<h1>{escape(title)}</h1>",
            '<p class="meta">Written by <code>python -m trainer report</code>; the plots are the PNG files beside '
            "this page.</p>",
            "<nav>" + "".join(f'<a href="#{sid}">{label}</a>' for sid, label, ok in sections if ok) + "</nav>"]
    if run is not None:
        body += _run_section(run, list(summary), images)
    if align:
        body += ['<section id="align"><h2>Alignment</h2>', *(_figure(images[n], CAPTIONS[n]) for n in align),
                 "</section>"]
    if plans:
        body += _plan_section(plans, images, corpus_dir)
    if manifest is not None:
        body += _corpus_section(manifest, rows or [], corpus_dir, images)
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
    write_text_atomic(path, page)
    return path
