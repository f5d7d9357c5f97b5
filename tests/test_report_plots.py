"""`python -m trainer report`: the numbers behind the plots, and the plots' promises (titles name the run or
corpus, shares end at 100%, log axes where one source dwarfs the rest, ≤ 8 coloured series, the val mean,
expert indices and the 1/E balance point), checked on the matplotlib figures themselves.

`make_report_inputs(tmp)` builds a small but complete run + corpus (12 sources, 2 phases, checkpoints with the
run config, mixture files, accounting with every kind of removal); test_report_html.py uses it too.
"""
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from tests.trainer_kit.corpus import make_corpus
from trainer.report import corpus_plots, data, main, run_plots, style
from trainer.report.data import corpus_table, dedup_kind, load_manifest, load_run

SOURCES = ["web", "code", "math", "wiki", "arxiv", "books", "chat", "qa", "news", "forum", "patents", "legal"]
NASTY = 'bad <b>"json"</b> & <img src=nowhere.png>'  # a reason name that must reach HTML escaped
P1 = 'name = "p1"\nmax_epochs = 2\n[sources]\nweb = 60\ncode = 30\nmath = 10\n'
P2 = ('name = "p2"\n[sources]\nweb = 40\ncode = 20\n[groups.rest]\nweight = 40\nsplit = "tokens"\nmembers = ['
      + ", ".join(f'"{s}"' for s in SOURCES[2:]) + "]\n")
SEQ, SEQS = 16, 8  # a step draws 8 sequences of 16 tokens


def _accounting(i: int, kept: int) -> list[dict]:
    cross, exact, minhash = i % 3, (i * 2) % 5, i % 4
    dropped = {"gopher_short_doc": 3 + i, "duplicated_5_n_grams": i % 2, **({"too_few_sentences": 2} if i < 6 else {})}
    rejected = {NASTY: 1} if i == 0 else ({"invalid_json": i % 3} if i % 3 else {})
    chain, n = [], kept
    for stage, d, r in (("shard", {}, {}), ("dedup_cross", {"cross_source_dup": cross} if cross else {}, {}),
                        ("dedup", {k: v for k, v in (("exact_dup", exact), ("minhash_dup", minhash)) if v}, {}),
                        ("filter", {k: v for k, v in dropped.items() if v}, {}), ("format", {}, rejected)):
        n_in = n + sum(d.values()) + sum(r.values())
        chain.insert(0, {"stage": stage, "docs_in": n_in, "docs_out": n, "dropped": d, "rejected": r})
        n = n_in
    return chain


def make_corpus_inputs(root: Path) -> Path:
    """A real (Corpus.open-able) corpus whose manifest also has accounting chains and a fidelity table."""
    sizes = {s: 400 * (12 - i) ** 2 for i, s in enumerate(SOURCES)}  # web has 144× the tokens of legal
    make_corpus(root, sizes, vocab=64, val_tokens={s: 40 for s in SOURCES[:7]}, mean_doc=40, name="tiny_test")
    m = json.loads((root / "manifest.json").read_text())
    for i, s in enumerate(SOURCES):
        body = m["sources"][s]
        body["accounting"] = _accounting(i, sum(sp["n_docs"] for sp in body["splits"].values()))
    # the corpus builder's rows (pipeline.fidelity.manifest_fidelity), for five of the sources
    m["fidelity"] = {s: {"docs_in": 100, "kept": 100 - 10 * (i % 4), "removed_share": 0.1 * (i % 4),
                         "format_share": 0.0, "filter_share": 0.1 * (i % 4), "top_rule": "filter/gopher_short_doc",
                         "top_rule_share": 0.1 * (i % 4), "threshold": 0.25, "status": "warn" if i % 4 > 2 else "ok"}
                     for i, s in enumerate(SOURCES[:5])}
    (root / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True))
    return root


def make_run_inputs(run: Path, corpus: Path, steps=(20, 10), experts=(4, 4)) -> Path:
    """metrics.jsonl of a 2-phase run with val on every source, and a checkpoint's train_state.json; 2 layers of
    `experts` = (attention, MLP) experts."""
    from trainer.data.corpus import Corpus
    from trainer.data.mixture import load_mixture

    run.mkdir(parents=True)
    mixes = []
    for name, text in (("p1.toml", P1), ("p2.toml", P2)):
        (run.parent / name).write_text(text)
        mixes.append(run.parent / name)
    c = Corpus.open(corpus)
    shares = [load_mixture(p, c).shares for p in mixes]
    rng = np.random.default_rng(0)
    lines, step, n1 = [], 0, steps[0]
    cfg = {"train": {"batch_tokens": SEQ * SEQS, "phase1_tokens": steps[0] * SEQ * SEQS,
                     "phase2_tokens": steps[1] * SEQ * SEQS},
           "data": {"corpus": str(corpus), "phase1_mixture": str(mixes[0]), "phase2_mixture": str(mixes[1])}}
    for phase in (1, 2):
        sh = shares[phase - 1]
        lines.append({"kind": "event", "step": step, "phase": phase, "event": "phase_start",
                      "mixture": str(mixes[phase - 1]), "shares": sh})
        if phase == 1:
            lines.append({"kind": "val", "step": 0, "phase": 1, "tokens": 0, "loss": {s: 9.0 for s in SOURCES},
                          "mean": 9.0})
        for _ in range(steps[phase - 1]):
            step += 1
            names = list(sh)
            drawn = rng.choice(len(names), size=SEQS, p=np.array(list(sh.values())))
            src = {}
            for k in drawn:
                src[names[k]] = src.get(names[k], 0) + SEQ
            loss = 9 - 3 * step / sum(steps) + 0.1 * np.sin(step)
            attn = [[step + 1, 2, 3, 4], [5, 5, 5, 5]] if experts[0] == 4 else \
                [[step + e for e in range(experts[0])], [5] * experts[0]]
            mlp = [[4, 3, 2, 1], [1, 1, 1, 9]] if experts[1] == 4 else \
                [[e + 1 for e in range(experts[1])], [9] + [1] * (experts[1] - 1)]
            lines.append({"kind": "train", "step": step, "phase": phase, "tokens": step * SEQ * SEQS,
                          "loss": loss + 0.01, "lm_loss": loss, "lr": 1e-3 if phase == 1 else 1e-3 * 0.9 ** step,
                          "step_s": 0.5, "tokens_per_s": SEQ * SEQS / 0.5, "source_tokens": src,
                          "expert_tokens": {"attn": attn, "mlp": mlp}})
            if step % 10 == 0:
                losses = {s: 9 - 3 * step / sum(steps) + 0.05 * i for i, s in enumerate(SOURCES)}
                lines.append({"kind": "val", "step": step, "phase": phase, "tokens": step * SEQ * SEQS,
                              "loss": losses, "mean": sum(losses.values()) / len(losses)})
        ck = run / "checkpoints" / f"step-{step:08d}"
        ck.mkdir(parents=True)
        (ck / "train_state.json").write_text(json.dumps({"step": step, "phase": phase, "run_config": cfg}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert step == n1 + steps[1]
    return run


def make_report_inputs(tmp: Path) -> tuple[Path, Path]:
    corpus = make_corpus_inputs(tmp / "corpus")
    return make_run_inputs(tmp / "tiny", corpus), corpus


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_report_inputs(tmp_path_factory.mktemp("report"))


# ------------------------------------------------------------------------------------------- numbers
def test_dedup_is_told_apart_by_stage_and_reason():
    assert dedup_kind("dedup", "exact_dup") == "exact"
    assert dedup_kind("dedup", "minhash_dup") == "MinHash"
    assert dedup_kind("dedup_cross", "cross_source_dup") == "cross-source"
    assert dedup_kind("dedup_cross", "anything") == "cross-source"
    assert dedup_kind("filter", "duplicated_5_n_grams") is None  # repetition inside a document, not dedup
    assert dedup_kind("format", "invalid_json") is None


def test_corpus_numbers_add_up(inputs):
    _, corpus = inputs
    rows = corpus_table(load_manifest(corpus))
    assert [r["source"] for r in rows][:3] == ["web", "code", "math"]  # most tokens first
    for i, s in enumerate(SOURCES):
        r = next(x for x in rows if x["source"] == s)
        removed = sum(r["dropped"].values()) + sum(r["rejected"].values()) + r["dedup_n"]
        assert r["docs_in"] == r["kept"] + removed, s
        assert r["kept"] == r["train_docs"] + r["val_docs"]
        assert r["dedup"].get("exact", 0) == (i * 2) % 5 and r["dedup"].get("MinHash", 0) == i % 4
        assert r["dedup"].get("cross-source", 0) == i % 3
        assert "duplicated_5_n_grams" in r["dropped"] or i % 2 == 0
    web = rows[0]
    assert web["rejected"] == {NASTY: 1} and web["dedup_in"] == web["kept"]  # web: nothing deduped (i = 0)


def test_run_summary_and_realised_mix(inputs):
    run = load_run(inputs[0])
    assert run.phases == [1, 2] and run.batch_tokens == SEQ * SEQS and run.config_from.name == "train_state.json"
    s1, s2 = data.phase_summary(run)
    assert (s1["step_first"], s1["step_last"], s1["steps"], s1["tokens"]) == (0, 20, 20, 20 * SEQ * SEQS)
    assert (s2["step_first"], s2["step_last"], s2["steps"]) == (20, 30, 10)
    assert s1["val_first"] == 9.0 and s2["val_last"] == pytest.approx(6 + 0.05 * 5.5)
    assert s1["compute_s"] == pytest.approx(10.0) and s1["tokens_per_s"] == pytest.approx(SEQ * SEQS / 0.5)
    got = data.realised_shares(run, 1)
    assert sum(got.values()) == pytest.approx(1) and set(got) <= {"web", "code", "math"}
    plans = data.mixture_plans(run, None)  # the corpus named in the run config
    assert [p.phase for p in plans] == [1, 2] and not plans[0].notes and not plans[1].notes
    assert [r.source for r in plans[0].rows] == ["web", "code", "math"]
    assert plans[0].rows[0].tokens_drawn == round(0.6 * 20 * SEQ * SEQS)
    assert len(plans[1].rows) == len(SOURCES)


def test_plan_says_why_it_is_missing(inputs, tmp_path):
    run = load_run(inputs[0])
    plans = data.mixture_plans(run, tmp_path / "no_corpus")
    assert all(not p.rows and "manifest" in p.notes[-1] for p in plans)


def test_expert_shares_sum_to_one_per_layer(inputs):
    shares, steps = run_plots.expert_shares(load_run(inputs[0]).train, "attn", bins=10)
    assert shares.shape == (2 * 4, 10) and steps[-1] == 30
    assert shares.reshape(2, 4, 10).sum(1) == pytest.approx(1.0)
    assert shares[1, :].max() < shares[0, -1]  # layer 0's expert 0 takes over as step grows in this fake run


def test_top_n_and_label_spreading():
    top, rest = style.top_n({f"s{i}": float(i) for i in range(12)}, 8)
    assert top == [f"s{i}" for i in (11, 10, 9, 8, 7, 6, 5)] and len(rest) == 5  # 7 named + "other"
    assert style.top_n({"a": 1, "b": 2}, 8) == (["b", "a"], [])
    ys = style.spread([5.0, 5.01, 5.02, 9.0, 0.0], gap=0.5, lo=0.0, hi=9.0)
    order = sorted(ys)
    assert all(b - a >= 0.5 - 1e-9 for a, b in zip(order, order[1:])) and min(ys) >= 0 and max(ys) <= 9
    assert ys[0] < ys[1] < ys[2]  # order kept


# ------------------------------------------------------------------------------------------- figures
@pytest.fixture
def figures(monkeypatch):
    """Capture each figure instead of writing it, to look at its axes."""
    got = {}

    def keep(fig, path):
        got[Path(path).name] = fig
        return path
    for mod in (run_plots, corpus_plots):
        monkeypatch.setattr(mod, "save", keep)
    yield got
    style.pyplot().close("all")


def _texts(fig) -> str:
    return " ".join([t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes for t in ax.texts]
                    + [ax.get_title(loc=where) for ax in fig.axes for where in ("left", "center")])


def test_run_figures_keep_their_promises(inputs, figures):
    run = load_run(inputs[0])
    for f in (run_plots.plot_loss, run_plots.plot_lr, run_plots.plot_expert_load, run_plots.plot_mixture):
        f(run, Path(f"{f.__name__[5:]}.png"))
    for name, fig in figures.items():
        assert "Run tiny" in _texts(fig), name
        assert all(ax.get_xlabel() for ax in fig.axes if ax.get_label() != "<colorbar>"
                   and ax.get_visible() and ax.has_data() and ax.get_subplotspec().is_last_row()), name
    loss, per_src = figures["loss.png"].axes[:2]
    assert loss.get_ylabel() == "cross-entropy (nats per token)"
    mean = [ln for ln in loss.lines if ln.get_color() == "black"]
    assert mean and mean[0].get_linewidth() > 2 and "mean" in mean[0].get_label()
    coloured = {ln.get_color() for ln in per_src.lines} - {style.OTHER, "black"}
    assert len(coloured) <= 7  # ≤ 8 series: 7 named sources + "other"
    ends = " ".join(t.get_text() for t in per_src.texts)
    assert "mean" in ends and "other (5)" in ends  # labels at the line ends, 12 val sources
    moa = figures["expert_load.png"].axes[0]
    assert [t.get_text() for t in moa.get_yticklabels()][:2] == ["L0 · E0", "L0 · E1"]
    cbar = figures["expert_load.png"].axes[-1]
    assert any("1/4, balanced" in t.get_text() for t in cbar.get_yticklabels())
    assert any(ln.get_linestyle() == "--" and ln.get_xdata()[0] == 20 for ln in moa.lines)  # phase 2 marker
    mix = figures["mixture.png"].axes
    assert len(mix) == 2 and all(ax.get_xscale() == "log" and ax.get_xlim()[1] == 1.0 for ax in mix)
    assert [t.get_text() for t in mix[0].get_yticklabels()] == ["web", "code", "math"]


@pytest.mark.parametrize("experts", [(1, 8), (4, 8), (2, 1)])
def test_expert_load_draws_each_kind_with_its_own_count(inputs, figures, tmp_path, experts):
    """An ablation's MoE-only (1 attention expert), mixed counts or MoA-only run: each panel has its own kind's
    rows and balance point; a 1-expert kind is called dense. (The plot once drew both with the attention's count.)"""
    run = load_run(make_run_inputs(tmp_path / "mixed", inputs[1], experts=experts))
    run_plots.plot_expert_load(run, Path("expert_load.png"))
    fig = figures["expert_load.png"]
    panels = fig.axes[:2]
    colorbars = fig.axes[2:]
    for ax, n_exp in zip(panels, experts):
        labels = [t.get_text() for t in ax.get_yticklabels()]
        if n_exp == 1:
            assert not labels and "dense" in " ".join(t.get_text() for t in ax.texts)
        else:
            assert labels == [f"L{r // n_exp} · E{r % n_exp}" for r in range(2 * n_exp)]
            assert ax.get_images()[0].get_array().shape[0] == 2 * n_exp
    balances = {t.get_text().split("=")[1].split(",")[0].strip() for cb in colorbars for t in cb.get_yticklabels()
                if "balanced" in t.get_text()}
    assert balances == {f"1/{n}" for n in experts if n > 1}
    title = _texts(fig)
    assert (f"{experts[0]} attention / {experts[1]} MLP experts" in title) if experts[0] != experts[1] else True


def test_corpus_figures_keep_their_promises(inputs, figures):
    rows = corpus_table(load_manifest(inputs[1]))
    for f in (corpus_plots.plot_corpus_tokens, corpus_plots.plot_corpus_drops, corpus_plots.plot_corpus_dedup):
        f(rows, "tiny_test", Path(f"{f.__name__[5:]}.png"))
    for name, fig in figures.items():
        assert "Corpus tiny_test" in _texts(fig), name
        ax = fig.axes[0]
        assert ax.get_xlabel() and [t.get_text() for t in ax.get_yticklabels()][0] == "web", name
    tokens = figures["corpus_tokens.png"].axes[0]
    assert tokens.get_xscale() == "log" and {t.get_text() for t in tokens.get_legend().get_texts()} == {"train", "val"}
    assert "no val split" in _texts(figures["corpus_tokens.png"])  # val bars are there, or said to be absent
    for name in ("corpus_drops.png", "corpus_dedup.png"):
        ax = figures[name].axes[0]
        assert ax.get_xlim() == (0.0, 1.0), name  # shares end at 100%
        assert len(ax.get_legend().get_texts()) <= 8, name
    legend = [t.get_text() for t in figures["corpus_dedup.png"].axes[0].get_legend().get_texts()]
    assert [x.split(" ")[0] for x in legend] == ["exact", "MinHash", "cross-source"]
    drops = figures["corpus_drops.png"].axes[0]
    widths = np.zeros(len(rows))
    for bar in drops.patches:
        widths[round(bar.get_y() + bar.get_height() / 2)] += bar.get_width()
    assert widths == pytest.approx(1.0)  # kept + every removal = all of a source's input documents


# ------------------------------------------------------------------------------------------- files
def test_report_writes_every_png_and_same_bytes_twice(inputs, tmp_path, capsys):
    run, corpus = inputs
    names = ["loss", "lr", "expert_load", "mixture", "corpus_tokens", "corpus_drops", "corpus_dedup"]
    first = {}
    for out in (tmp_path / "a", tmp_path / "b"):
        assert main(["--run", str(run), "--corpus", str(corpus), "--out", str(out)]) == 0
        for n in names:
            img = mpimg.imread(out / f"{n}.png")
            assert img.shape[0] > 250 and img.shape[1] > 500, n
            assert img.std() > 0.01, n  # not a blank canvas
            first.setdefault(n, (out / f"{n}.png").read_bytes())
            assert (out / f"{n}.png").read_bytes() == first[n], n
        assert (out / "index.html").is_file()
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    printed = capsys.readouterr().out
    assert all(f"{n}.png" in printed for n in names) and "index.html" in printed
    assert (tmp_path / "a" / "index.html").read_bytes() == (tmp_path / "b" / "index.html").read_bytes()


def test_report_errors_name_the_missing_file(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err
    assert main(["--corpus", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "manifest.json" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text('{"sources": ')
    assert main(["--corpus", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "invalid JSON at line 1" in capsys.readouterr().err
