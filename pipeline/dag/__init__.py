"""The corpus DAG runner: ``python -m pipeline build|status <corpus config>``.

    python -m pipeline build  pipeline/configs/sample.toml    # offline, the embedded sample (make corpus)
    python -m pipeline build  pipeline/configs/jetmoe.toml    # the real datasets from the hub
    python -m pipeline status pipeline/configs/sample.toml    # one row per unit: state, tasks, docs, bytes

    from pipeline.dag import build, make_plan
    outcomes = build("pipeline/configs/sample.toml", progress=False)

The config lists the stages (``[corpus] stages``); each stage class says what it runs after and whether
it runs per input group, per source or once for the corpus. The runner orders those units, runs every
datatrove job of a unit with the configured executor, checks that every task finished (Ray and Slurm do
not fail loudly), collects the unit's accounting and writes ``_DONE.json`` last. So:

* a rerun skips units whose ``_DONE.json`` matches (stage version + a fingerprint of the config values and
  upstream units it depends on) and, inside an unfinished unit, every task datatrove marked complete: a
  build killed at any point resumes where it stopped, with the same outputs;
* a failed task (a corrupt file) does not stop the others: units that need it are skipped, everything
  else runs, and the build exits 1 listing each failed task with its message and log file;
* with ``[executor] kind = "slurm"`` the whole DAG is submitted at once as dependent job arrays (afterok);
  run ``build`` again once they ended to check completion and write the accounting.

Modules: ``plan`` (units and their order), ``records`` (``_STARTED.json`` / ``_DONE.json``: fingerprints,
prepare, finish, per-source accounts), ``executors`` (datatrove's, recording failed tasks), ``lock`` (one
build per work folder; forked workers die with the build), ``runner`` (local and Ray), ``slurm``, ``progress``
(what each task reports while it runs), ``display`` (what the build prints while it runs), ``report``
(summary, status, failures) and ``cli``.
"""

from pipeline.dag.executors import (LocalExecutor, RayExecutor, SlurmExecutor, incomplete_ranks,  # noqa: F401
                                    make_executor, read_failures)
from pipeline.dag.plan import BuildError, Plan, Unit, make_plan, resolve_sources  # noqa: F401
from pipeline.dag.records import (DONE, STARTED, Outcome, finish, is_done, prepare, source_accounts,  # noqa: F401
                                  stage_order, unit_fingerprint)
from pipeline.dag.report import failure_report, status_rows, status_total, summary, table  # noqa: F401
from pipeline.dag.runner import build, run_unit  # noqa: F401
from pipeline.dag.slurm import submit_slurm  # noqa: F401
from pipeline.dag.cli import build_main, status_main  # noqa: F401,E402
