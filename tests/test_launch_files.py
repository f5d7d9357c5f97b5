"""The launch files that ship (launch/*.sbatch, launch/*.sh, the corpus config on Slurm), run as far as a machine
without Slurm allows: `bash -n`, then for real under fake `srun`, `scontrol`, `sbatch` and a fake venv
`torchrun` that record their command lines, so the torchrun arguments, the rendezvous, the phase and the
overrides are checked; and the real corpus config submitted as job arrays through datatrove with `sbatch`
recorded."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = sorted((REPO / "launch").glob("*"))


@pytest.mark.parametrize("path", LAUNCH, ids=[p.name for p in LAUNCH])
def test_launch_files_parse(path):
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.access(path, os.X_OK), f"{path} is not executable"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    p = bin_dir / name
    p.write_text("#!/bin/bash\n" + body)
    p.chmod(0o755)


@pytest.fixture()
def cluster(tmp_path):
    """PATH with fake srun / scontrol / sbatch, a fake venv whose torchrun records its arguments and cwd."""
    bin_dir, venv, log = tmp_path / "bin", tmp_path / "venv", tmp_path / "calls.log"
    bin_dir.mkdir()
    (venv / "bin").mkdir(parents=True)
    _fake(bin_dir, "srun", f'echo "srun $*" >> {log}\n'
                           'while [[ "$1" == --* ]]; do shift; done\nSLURM_PROCID=0 SLURM_NODEID=0 exec "$@"\n')
    _fake(bin_dir, "scontrol", f'echo "scontrol $*" >> {log}\n'
                               '[ "$1 $2" = "show hostnames" ] && printf "gpu-001\\ngpu-002\\ngpu-003\\n"\n')
    _fake(bin_dir, "sbatch", f'echo "sbatch $* RUN_DIR=$RUN_DIR" >> {log}\n'
                             f'n=$(grep -c "^sbatch" {log}); echo "$((4240 + n));cluster1"\n')
    _fake(venv / "bin", "torchrun", f'echo "torchrun $* (cwd $PWD)" >> {log}\n')
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "VENV": str(venv), "SLURM_JOB_NODELIST": "gpu-[001-003]",
           "SLURM_NNODES": "12", "SLURM_JOB_ID": "777", "SLURM_SUBMIT_DIR": str(REPO), "RUN_DIR": "/shared/runs/8b"}
    for k in ("JETMOE_DIR", "RUN_CONFIG", "BATCH_TOKENS", "GPUS_PER_NODE", "RDZV_PORT", "SBATCH_ARGS"):
        env.pop(k, None)
    return env, log


def _calls(log: Path, prog: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith(prog + " ")]


def test_phase1_job_starts_one_torchrun_per_node_with_the_rendezvous_on_the_first(cluster):
    env, log = cluster
    r = subprocess.run(["bash", str(REPO / "launch/train.sbatch"), "1", "--optim.lr=4e-4"], env=env,
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert "phase 1 of /shared/runs/8b: 12 nodes × 8 GPUs, rendezvous gpu-001:29500 (job 777)" in r.stdout
    (srun,) = _calls(log, "srun")
    assert srun.startswith(f"srun --kill-on-bad-exit=1 {env['VENV']}/bin/torchrun ")
    (torchrun,) = _calls(log, "torchrun")
    assert torchrun == ("torchrun --nnodes 12 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint gpu-001:29500 "
                        "--rdzv-id 777 -m trainer train trainer/configs/jetmoe-8b.toml --phase 1 --run-dir "
                        f"/shared/runs/8b --train.batch_tokens=3932160 --optim.lr=4e-4 (cwd {REPO})")


def test_phase2_job_reads_the_run_folder(cluster):
    env, log = cluster
    env.update(GPUS_PER_NODE="4", RDZV_PORT="29999", JETMOE_DIR=str(REPO / "launch"))
    r = subprocess.run(["bash", str(REPO / "launch/train.sbatch"), "2"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (torchrun,) = _calls(log, "torchrun")
    assert torchrun.startswith("torchrun --nnodes 12 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint "
                               "gpu-001:29999 --rdzv-id 777 -m trainer train --phase 2 --run-dir /shared/runs/8b "
                               f"(cwd {REPO / 'launch'})")


@pytest.mark.parametrize("args,env_extra,needle", [
    (["3"], {}, "the phase is 1 or 2, not '3'"),
    ([], {}, "usage: sbatch launch/train.sbatch 1|2"),
    (["1"], {"RUN_DIR": ""}, "set RUN_DIR to the run folder on the shared filesystem"),
])
def test_bad_launches_say_what_is_missing(cluster, args, env_extra, needle):
    env, log = cluster
    r = subprocess.run(["bash", str(REPO / "launch/train.sbatch"), *args], env={**env, **env_extra},
                       capture_output=True, text=True)
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    assert not log.exists() or not _calls(log, "torchrun")


def test_submit_chains_phase2_after_phase1(cluster):
    env, log = cluster
    env["SBATCH_ARGS"] = "--partition=gpu --account=proj"
    r = subprocess.run(["bash", str(REPO / "launch/submit.sh"), "--train.phase1_tokens=1e9"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    one, two = _calls(log, "sbatch")
    script = REPO / "launch/train.sbatch"
    assert one == f"sbatch --parsable --export=ALL --partition=gpu --account=proj {script} 1 " \
                  "--train.phase1_tokens=1e9 RUN_DIR=/shared/runs/8b"
    assert two == f"sbatch --parsable --export=ALL --partition=gpu --account=proj --dependency=afterok:4241 " \
                  f"{script} 2 RUN_DIR=/shared/runs/8b"
    assert "phase 1: job 4241; phase 2: job 4242" in r.stdout


def test_the_sbatch_header_is_the_papers_layout():
    text = (REPO / "launch/train.sbatch").read_text()
    head = dict(re.findall(r"^#SBATCH --([a-z-]+)(?:=(\S+))?", text, re.M))
    assert head["nodes"] == "12" and head["gpus-per-node"] == "8" and head["ntasks-per-node"] == "1"
    assert "requeue" in head and head["time"] == "14-00:00:00"


def test_the_real_corpus_config_submits_to_slurm(tmp_path, monkeypatch):
    """pipeline/configs/jetmoe.toml with the executor chosen on the command line: job arrays go to the cluster's
    default partition unless one is named, and every unit of the DAG is submitted."""
    import datatrove.executor.slurm as dt_slurm

    from pipeline.config import ConfigError, load_config
    from pipeline.dag import make_plan, submit_slurm

    launched: list[str] = []
    monkeypatch.setattr(dt_slurm, "launch_slurm_job",
                        lambda script, r, *args: launched.append(script) or str(500 + len(launched)))
    monkeypatch.chdir(REPO)
    base = ["--executor.kind=slurm", f"--corpus.work_dir={tmp_path}/work", f"--corpus.shards_dir={tmp_path}/shards",
            '--corpus.sources=["refinedweb", "pile_arxiv", "pile_rest"]']
    plan = make_plan(load_config("pipeline/configs/jetmoe.toml", overrides=base))
    assert {o.state for o in submit_slurm(plan)} == {"submitted"}
    arrays = [s for s in launched if "launch_pickled_pipeline" in s]
    assert len(arrays) >= len(plan.units) and not any("--partition" in s for s in arrays)
    assert all("source .venv/bin/activate" in s and "#SBATCH --time=24:00:00" in s for s in arrays)

    launched.clear()
    plan = make_plan(load_config("pipeline/configs/jetmoe.toml", overrides=[
        *base, f"--corpus.work_dir={tmp_path}/work2", "--executor.slurm.partition=cpu-long", "--executor.slurm.qos=low"]))
    submit_slurm(plan)
    assert all("#SBATCH --partition=cpu-long" in s and "#SBATCH --qos=low" in s for s in launched
               if "launch_pickled_pipeline" in s)
    with pytest.raises(ConfigError, match=r"partition is empty: name one \(`sinfo -s` lists the partitions\)"):
        load_config("pipeline/configs/jetmoe.toml", overrides=[*base, "--executor.slurm.partition="])


def test_the_one_gpu_smoke_test_of_the_checklist_is_the_8b_on_two_blocks():
    """docs/real-run.md's smoke test (run on a GPU, not here): its overrides as written load on the 8B's run
    config, the model is the 8B's width, vocabulary and context with 2 blocks, and the phases are the steps
    the page says (200 of 16 sequences, micro-batch 2 × 8 accumulated, then 50)."""
    from trainer.build import plan_steps
    from trainer.config import load_run_config, resolve_model_config
    from trainer.dist import DistInfo
    from trainer.model import count_params, load_model_config

    page = (REPO / "docs/real-run.md").read_text()
    (args,) = re.findall(r'make phase1 MODEL=jetmoe-8b RUN_DIR=runs/smoke ARGS="(.*?)"', page, re.S)
    cfg = load_run_config(REPO / "trainer/configs/jetmoe-8b.toml", args.replace("\\\n", " ").split())
    smoke = load_model_config(resolve_model_config(cfg.model.config)).to_dict()
    full = load_model_config(REPO / "trainer/configs/model/jetmoe-8b.toml").to_dict()
    assert {k: v for k, v in smoke.items() if smoke[k] != full[k]} == {"n_layers": 2, "name": "jetmoe-8b-smoke"}
    total, _ = count_params(load_model_config(resolve_model_config(cfg.model.config)))
    assert f"2 blocks ({total / 1e9:.2f}B parameters, ≈ {total * 16 / 2**30:.1f} GiB of training state)" in page
    one = DistInfo()
    p1, p2 = plan_steps(cfg, 1, one), plan_steps(cfg, 2, one)
    assert (p1.end_step, p1.accum, p2.end_step - p2.start_of_phase) == (200, 8, 50)


def test_the_corpus_command_submits_to_slurm_from_the_command_line(tmp_path):
    """real-run.md's `jetmoe corpus pipeline/configs/jetmoe.toml --executor.kind=slurm ...` as a process, with an
    `sbatch` on PATH that records its scripts: the config says kind = "local", the command line wins."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch.log"
    bin_dir.mkdir()
    _fake(bin_dir, "sbatch", f'cat "${{@: -1}}" >> {log}; echo "#END" >> {log}\n'
                             f'echo "Submitted batch job $((1000 + $(grep -c "^#END" {log})))"\n')
    _fake(bin_dir, "squeue", "exit 0\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", "import sys; from jetmoe_core.cli import main; sys.exit(main())", "corpus",
           "pipeline/configs/jetmoe.toml", "--executor.kind=slurm", "--executor.slurm.partition=cpu",
           f"--corpus.work_dir={tmp_path}/work", f"--corpus.shards_dir={tmp_path}/shards",
           '--corpus.sources=["pile_arxiv", "pile_rest"]', "--no-progress"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    scripts = log.read_text().split("#END\n")[:-1]
    arrays = [s for s in scripts if "launch_pickled_pipeline" in s]
    assert arrays and all("#SBATCH --partition=cpu" in s for s in arrays), scripts[:1]
    # the command to run again once the jobs end keeps every override: without them it would build locally
    again = re.search(r"run `python -m pipeline build (.*?)` again", r.stdout)
    assert again and again[1].startswith("pipeline/configs/jetmoe.toml --executor.kind=slurm "
                                         "--executor.slurm.partition=cpu --corpus.work_dir="), r.stdout
    assert not (tmp_path / "shards/manifest.json").exists()   # nothing ran here: the cluster runs it
