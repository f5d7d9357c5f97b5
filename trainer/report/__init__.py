"""`python -m trainer report`: plots and one HTML page for a training run and the corpus it read.

    python -m trainer report --run runs/tiny --corpus shards/sample --out reports/tiny
    python -m trainer report --run runs/tiny                      # the same: the run's own corpus, reports/tiny
    python -m trainer report --sft runs/tiny-sft --dpo runs/tiny-dpo --out reports/tiny-chat
    make report                       # the same for the demo; open reports/tiny/index.html

From the run folder (metrics.jsonl, and its saved run config, run_config.toml):
  loss.png          train loss and the val mean (left), val loss per source with labels at the ends (right)
  lr.png            the learning rate per step (warmup, stable, decay), phases shaded
  expert_load.png   share of tokens per expert (layer × expert index) over time, for MoA and MoE; white is
                    balanced (1/E), red busier, blue idler; a dashed line where phase 2 starts
  mixture.png       per phase: target vs realised share of tokens per source, on a log axis
From the alignment runs (--sft, --dpo: their metrics.jsonl; trainer/report/align_plots.py):
  sft_loss.png      SFT train loss on the assistant tokens and the val mean
  dpo_rewards.png   DPO chosen / rejected rewards and margins (left), loss and preference accuracy (right)
From the corpus folder (manifest.json):
  corpus_tokens.png tokens per source, train and val, on a log axis
  corpus_drops.png  what became of each source's documents: kept, filtered (by reason), rejected, duplicate
  corpus_dedup.png  duplicates removed per source, split by exact / MinHash / cross-source dedup
index.html          the plots with the tables: run summary, mixture plan per phase (target, tokens, epochs,
                    realised), corpus accounting and fidelity per source; self-contained (relative image
                    links, inline CSS, no scripts, no network)
Any of --run, --sft, --dpo, --corpus may be left out; the page then shows what it has. Every file is written atomically.
"""
from .cli import main
from .data import corpus_table, load_manifest, load_run
from .run_plots import expert_shares

__all__ = ["main", "load_run", "load_manifest", "corpus_table", "expert_shares"]
