"""The same DAG on datatrove's Ray executor (a local 2-CPU Ray instance) and as Slurm job arrays.

Slurm cannot run here: the test builds the executors the runner would submit and runs datatrove's own
launch code with ``sbatch`` replaced by a recorder, checking the scripts and the afterok chain.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.dag import SlurmExecutor, build, make_plan, submit_slurm
from tests.corpus_kit.fake_sources import REGISTRY, make_mirror, read_outputs, write_config

REPO = Path(__file__).resolve().parents[1]


def test_ray_executor_runs_sample_dag_reports_failure_and_resumes(tmp_path):
    """The sample config's DAG (download + format; five sources incl. the Pile group) on a local 2-CPU Ray."""
    ray = pytest.importorskip("ray")
    mirror = tmp_path / "mirror"
    for repo in ("monology/pile-uncopyrighted", "allenai/peS2o", "teknium/OpenHermes-2.5"):
        shutil.copytree(REPO / "pipeline/samples" / repo, mirror / repo)
    bad = mirror / "allenai/peS2o/data/v2/train-00000-of-00020.json.gz"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated download

    def config(name: str, kind: str):
        cfg = load_config(REPO / "pipeline/configs/sample.toml")
        cfg.corpus.work_dir = str(tmp_path / name)
        cfg.corpus.stages = ["download", "format"]
        cfg.sources = ["pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest", "dolma_pes2o",
                       "openhermes"]
        cfg.options["download"].mirror_root = str(mirror)
        cfg.options["format"].tasks = 2
        cfg.executor.kind = kind
        cfg.executor.ray.num_cpus = 2
        return cfg

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        first = {o.unit: o for o in build(config("ray", "ray"), progress=False)}
        # Ray reports a failed rank as success: the runner finds it by its missing completion marker
        assert first["format/dolma_pes2o"].state == "failed"
        (fail,) = first["format/dolma_pes2o"].failures
        assert fail["rank"] == 0 and bad.name in fail["error"]
        assert all(o.state == "done" for u, o in first.items() if u != "format/dolma_pes2o"), first
        bad.write_bytes(good)
        second = {o.unit: o.state for o in build(config("ray", "ray"), progress=False)}
        assert second["format/dolma_pes2o"] == "done" and second["format/pile"] == "cached"
    finally:
        ray.shutdown()
    # the same documents and accounts as datatrove's local executor
    build(config("local", "local"), progress=False)
    a, b = read_outputs(tmp_path / "ray"), read_outputs(tmp_path / "local")
    assert [k for k in a if "format" in k] == [k for k in b if "format" in k]
    assert {k: v for k, v in a.items() if "format" in k} == {k: v for k, v in b.items() if "format" in k}


def test_slurm_builds_dependent_job_arrays(tmp_path, monkeypatch):
    import datatrove.executor.slurm as dt_slurm

    mirror = make_mirror(tmp_path)
    cfg_path = write_config(tmp_path, mirror, executor=(
        'kind = "slurm"\nworkers = 16\n[executor.slurm]\npartition = "cpu-long"\ntime = "02:00:00"\n'
        'cpus_per_task = 2\nmem_per_cpu_gb = 3\nqos = "high"\nsbatch_args = {account = "proj"}'),
        extra='\n[sources.alpha]\ntasks = 8\n')
    cfg = load_config(cfg_path, registry=REGISTRY)
    plan = make_plan(cfg, REGISTRY)

    launched: list[tuple[str, tuple]] = []

    def fake_sbatch(script, job_id_retriever, *args):
        launched.append((script, args))
        return str(100 + len(launched))

    monkeypatch.setattr(dt_slurm, "launch_slurm_job", fake_sbatch)
    outcomes = submit_slurm(plan)
    assert {o.state for o in outcomes} == {"submitted"}
    exs = {e.job_name: e for e in plan.slurm_executors}
    assert set(exs) == {f"fake-{s}-{k}-{s}" for s in ("download", "format") for k in ("alpha", "beta", "grp")}
    fa = exs["fake-format-alpha-format"]
    assert isinstance(fa, SlurmExecutor)
    assert (fa.tasks, fa.partition, fa.time, fa.cpus_per_task, fa.mem_per_cpu_gb, fa.qos, fa.workers) == (
        8, "cpu-long", "02:00:00", 2, 3, "high", 16)
    assert str(fa.logging_dir.path).endswith("work/alpha/format/_logs/format")
    # every job array was launched once (+ datatrove's stats-merge job), format after its download
    scripts = {re.search(r"--job-name=(\S+)", s).group(1): (s, a) for s, a in launched
               if "launch_pickled_pipeline" in s}
    assert set(scripts) == set(exs)
    order = [re.search(r"--job-name=(\S+)", s).group(1) for s, a in launched if "launch_pickled_pipeline" in s]
    ids = {}
    n = 0
    for s, a in launched:
        n += 1
        m = re.search(r"--job-name=(\S+)", s)
        if "launch_pickled_pipeline" in s:
            ids[m.group(1)] = str(100 + n)
    script, args = scripts["fake-format-alpha-format"]
    assert "#SBATCH --partition=cpu-long" in script and "#SBATCH --account=proj" in script
    assert "#SBATCH --array=0-7%16" in script and "#SBATCH --cpus-per-task=2" in script
    assert "source .venv/bin/activate" in script
    assert f"--dependency=afterok:{ids['fake-download-alpha-download']}" in args
    assert order.index("fake-download-alpha-download") < order.index("fake-format-alpha-format")
    assert not any(a for name, (s, a) in scripts.items() if name.startswith("fake-download") and
                   any(x.startswith("--dependency") for x in a))
    # the pickled executor the nodes run is ours, so a failed rank fails its array task
    assert json.loads((tmp_path / "work/alpha/format/_logs/format/ranks_to_run.json").read_text()) == list(range(8))
    assert SlurmExecutor.swallow is False


def test_slurm_waits_for_every_upstream_unit(tmp_path, monkeypatch):
    """A unit needing several upstream units gets one afterok list (datatrove's depends= takes one)."""
    import datatrove.executor.slurm as dt_slurm

    from pipeline.dag import make_executor
    from pipeline.stages.base import Job

    mirror = make_mirror(tmp_path)
    cfg = load_config(write_config(tmp_path, mirror, executor='kind = "slurm"'), registry=REGISTRY)
    launched = []
    monkeypatch.setattr(dt_slurm, "launch_slurm_job",
                        lambda script, r, *args: launched.append(args) or str(200 + len(launched)))
    a = make_executor(cfg, Job("a", [lambda data, rank, ws: None]), tmp_path / "a", job_name="a")
    b = make_executor(cfg, Job("b", [lambda data, rank, ws: None]), tmp_path / "b", job_name="b")
    c = make_executor(cfg, Job("c", [lambda data, rank, ws: None]), tmp_path / "c", job_name="c",
                      depends_on=[a, b])
    c.launch_job()
    # a, its stats merge, b, its stats merge, then c after both
    assert launched[-2] == ("--export=ALL,RUN_OFFSET=0", f"--dependency=afterok:{a.job_id}:{b.job_id}")


def test_slurm_jobs_run_as_on_a_cluster_then_rerun_finalizes(tmp_path, monkeypatch):
    """Run each submitted array task the way a node would (datatrove's launch_pickled_pipeline on the
    pickled executor, with SLURM_ARRAY_TASK_ID set), then ``build`` again: it finds every task complete,
    writes the accounting without submitting anything, and the outputs equal a local build's."""
    import os
    import subprocess
    import sys

    import datatrove.executor.slurm as dt_slurm

    mirror = make_mirror(tmp_path)
    root = tmp_path / "slurm"
    root.mkdir()
    cfg_path = write_config(root, mirror, sources='["alpha", "grp_a", "grp_b"]', executor='kind = "slurm"')
    launched = []
    monkeypatch.setattr(dt_slurm, "launch_slurm_job",
                        lambda script, r, *args: launched.append(script) or str(300 + len(launched)))
    plan = make_plan(load_config(cfg_path, registry=REGISTRY), REGISTRY)
    assert {o.state for o in submit_slurm(plan)} == {"submitted"}

    bin_dir = tmp_path / "bin"  # the nodes' scontrol, which datatrove asks to expand SLURM_NODELIST
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho localhost\n")
    (bin_dir / "scontrol").chmod(0o755)
    for ex in plan.slurm_executors:  # plan order is dependency order, as afterok would run them
        logs = Path(ex.logging_dir.path)
        n = len(json.loads((logs / "ranks_to_run.json").read_text()))
        for i in range(n):
            env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(i), "RUN_OFFSET": "0", "SLURM_NODELIST": "node1",
                   "SLURM_JOB_ID": "1", "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
            subprocess.run([sys.executable, "-m", "datatrove.tools.launch_pickled_pipeline",
                            str(logs / "executor.pik")], cwd=REPO, env=env, check=True, capture_output=True,
                           timeout=300)

    n_launched = len(launched)
    # while squeue still lists a submitted job, a rerun touches nothing
    ids = [j for p in (root / "work").rglob("_STARTED.json") for j in json.loads(p.read_text())["slurm_jobs"]]
    assert len(ids) == 4  # 2 groups x (download, format)
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho {ids[-1]}\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    plan = make_plan(load_config(cfg_path, registry=REGISTRY), REGISTRY)
    assert {o.state for o in submit_slurm(plan)} == {"queued"}
    assert len(launched) == n_launched and not list((root / "work").rglob("_DONE.json"))
    # once the queue is empty (squeue: "Invalid job id", exit 1) the rerun checks and accounts
    (bin_dir / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id' >&2\nexit 1\n")
    plan = make_plan(load_config(cfg_path, registry=REGISTRY), REGISTRY)
    assert {o.state for o in submit_slurm(plan)} == {"done"}
    assert len(launched) == n_launched  # nothing submitted again
    local = tmp_path / "local"
    local.mkdir()
    build(write_config(local, mirror, sources='["alpha", "grp_a", "grp_b"]'), registry=REGISTRY, progress=False)
    a, b = read_outputs(root / "work"), read_outputs(local / "work")
    assert {k: v for k, v in a.items() if "/format/" in k} == {k: v for k, v in b.items() if "/format/" in k}
