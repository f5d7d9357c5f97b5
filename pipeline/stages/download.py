"""Stage ``download``: make a dataset's files available and list them in ``files.json``.

One instance per input group (the four pile_* sources share EleutherAI/pile and fetch it once). Config::

    [download]
    mirror_root = "pipeline/samples"   # read <mirror_root>/<repo_id>/<path in repo>; omit to use the hub
    endpoint = "https://huggingface.co" # default: $HF_ENDPOINT or the public hub
    max_workers = 8                     # parallel file downloads per snapshot
    retries = 5                         # whole-snapshot retries on network errors (it resumes)
    backoff_s = 2.0                     # first wait; doubles every retry

    [sources.refinedweb]
    stream = true                       # list only; format fetches one file at a time (see pipeline/hub.py)

A source of your own with a local ``path`` (``pipeline.sources.user``) is listed where it is, whatever
``mirror_root`` says; before the build starts its folder must be there and the first record of its first file
must have the configured fields.
Every build and ``status`` lists the mirror or the hub again (names, sizes, mtimes or etags: no data is
read) and compares it with ``files.json``: a file added, removed or replaced since reruns the download and
everything that read it. A rerun keeps the files already downloaded (``repairs_in_place``): the snapshot
fetches only what is missing, changed or cut short. With ``HF_HUB_OFFLINE=1`` the hub is not asked, and
the files already downloaded are used as they are. A ``mirror_root`` that is missing, or lacks a repo the
build reads, stops the build before it starts, in one line.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from pipeline import hub
from jetmoe_core.io import write_json_atomic

from pipeline.accounting import StageAccount
from pipeline.dag.progress import input_progress
from pipeline.stages.base import Job, Stage, register


@dataclass
class DownloadOptions:
    mirror_root: str | None = None
    """A local folder laid out like the hub (<root>/<repo_id>/<path in repo>); None = the hub."""
    endpoint: str | None = None
    """Hub URL; None = $HF_ENDPOINT or https://huggingface.co."""
    max_workers: int = 8
    retries: int = 5
    backoff_s: float = 2.0

    def validate(self) -> None:
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {self.backoff_s}")


class DownloadStep(PipelineStep):
    """Fetch (or locate) one repo's files and write the listing; yields no documents."""

    name = "⬇ download"
    type = "📥 DOWNLOAD"

    def __init__(self, *, repo_id: str, repo_type: str, revision: str, allow_patterns: list[str],
                 out_dir: str, mode: str, options: DownloadOptions, local_root: str | None = None):
        super().__init__()
        self.local_root = local_root
        self.repo_id, self.repo_type, self.revision = repo_id, repo_type, revision
        self.allow_patterns = list(allow_patterns)
        self.out_dir = out_dir
        self.mode = mode
        self.opts = options

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if rank != 0:  # one listing per repo; extra ranks (if configured) have nothing to do
            return
        out = Path(self.out_dir)
        o = self.opts
        if self.mode == "local":  # a source of your own in a local folder: read where it is
            commit = None
            files = hub.list_mirror(self.local_root, "", self.allow_patterns)
            root = str(Path(self.local_root).resolve())
        elif self.mode == "mirror":
            commit = None
            files = hub.list_mirror(o.mirror_root, self.repo_id, self.allow_patterns)
            root = str((Path(o.mirror_root) / self.repo_id).resolve())
        else:
            commit = hub.resolve_commit(self.repo_id, self.repo_type, self.revision, endpoint=o.endpoint,
                                        retries=o.retries, backoff_s=o.backoff_s)
            if self.mode == "stream":
                files = hub.list_stream(self.repo_id, self.repo_type, commit, self.allow_patterns,
                                        endpoint=o.endpoint, retries=o.retries, backoff_s=o.backoff_s)
                root = f"hf://{self.repo_type}s/{self.repo_id}@{commit}"
            else:
                local = out / "files"
                files = hub.snapshot(self.repo_id, self.repo_type, commit, self.allow_patterns, local,
                                     endpoint=o.endpoint, max_workers=o.max_workers, retries=o.retries,
                                     backoff_s=o.backoff_s, progress=input_progress)
                root = str(local.resolve())
        if not files:
            raise hub.DownloadError(
                f"{self.repo_id}@{self.revision}: no file matches allow_patterns {self.allow_patterns} "
                f"({self.mode}); fix the patterns in [sources.<name>] allow_patterns")
        self.stat_update("files", value=len(files))
        self.stat_update("bytes", value=sum(f["size"] for f in files))
        write_json_atomic(out / hub.LISTING, {
            "repo_id": self.repo_id, "repo_type": self.repo_type, "revision": self.revision,
            "commit": commit, "mode": self.mode, "root": root, "files": files})
        return
        yield  # a generator, as datatrove pipelines expect


@register
class DownloadStage(Stage):
    name = "download"
    version = "v1"
    scope = "group"
    section = "download"
    Options = DownloadOptions
    repairs_in_place = True

    def spec(self):
        """The group's repo: every member must agree on it (they read the same files)."""
        specs = [self.ctx.specs[m] for m in self.members]
        first = specs[0]
        for s in specs[1:]:
            if (s.repo_id, s.revision, s.repo_type) != (first.repo_id, first.revision, first.repo_type):
                raise ValueError(f"input group {self.source!r}: sources {first.name} and {s.name} name different "
                                 f"repos/revisions ({first.repo_id}@{first.revision} vs {s.repo_id}@{s.revision}); "
                                 f"give them the same [sources.<name>] repo_id/revision")
        return first

    @property
    def mode(self) -> str:
        opts = self.options or DownloadOptions()
        if self.local_root:
            return "local"
        if opts.mirror_root:
            return "mirror"
        overrides = [self.ctx.config.override(m) for m in self.members] if self.ctx.config is not None else []
        return "stream" if any(o.stream for o in overrides) else "hub"

    @property
    def local_root(self) -> str | None:
        """The folder of a source of your own declared with a local path (``pipeline.sources.user``)."""
        return getattr(self.ctx.specs.get(self.members[0]), "local_path", None)

    @property
    def listing(self) -> Path:
        return self.output_dir / hub.LISTING

    def jobs(self) -> list[Job]:
        spec = self.spec()
        step = DownloadStep(repo_id=spec.repo_id, repo_type=spec.repo_type, revision=spec.revision,
                            allow_patterns=self._patterns(), out_dir=str(self.output_dir), mode=self.mode,
                            options=self.options or DownloadOptions(), local_root=self.local_root)
        return [Job("download", [step], tasks=1)]

    def fingerprint_extra(self) -> dict:
        # what the files are, not how they are fetched: changing retries, workers or the endpoint (a hub
        # mirror serves the same commits) must not throw away a multi-terabyte download
        opts = self.options or DownloadOptions()
        return {"mode": self.mode, "mirror_root": opts.mirror_root}

    def accounts(self) -> dict[str, StageAccount]:
        return {}  # files, not documents: the accounting chain starts at format

    def done_extra(self) -> dict:
        # the listing's hash in the record: a changed listing changes the record, so what read it reruns
        return {"listing_sha256": hashlib.sha256(self.listing.read_bytes()).hexdigest()}

    def preflight(self) -> str | None:
        """A mirror_root that is not there, or lacks repos of this build, in one line (the same line from
        every group, so the runner prints it once)."""
        opts = self.options or DownloadOptions()
        if self.mode == "local":
            from pipeline.sources.chat import ChatTemplate
            from pipeline.sources.user import check_first_record

            cfg = self.ctx.config
            return check_first_record(self.spec(), ChatTemplate.from_dict(cfg.chat_template if cfg else None),
                                      cfg.path if cfg else None)
        if self.mode != "mirror":
            return None
        root = Path(opts.mirror_root)
        where = f"[download] mirror_root = {opts.mirror_root!r}"
        if self.ctx.config is not None:
            where += f" in {self.ctx.config.path}"
        if not root.is_dir():
            return (f"{where}: no such folder {root.absolute()}; point mirror_root at a folder laid out as "
                    f"<mirror_root>/<repo_id>/<path in repo> (relative paths start at {Path.cwd()}), or remove "
                    f"it to download from the hub")
        repos = sorted({self.ctx.specs[ms[0]].repo_id for ms in self.ctx.groups.values()
                        if not getattr(self.ctx.specs[ms[0]], "local_path", None)})
        missing = [r for r in repos if not (root / r).is_dir()]
        if missing:
            return (f"{where}: {root.absolute()} lacks {len(missing)} of the {len(repos)} repos this build reads "
                    f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); put each one's files under "
                    f"<mirror_root>/<repo_id>/, or select fewer sources in [corpus] sources")
        return None

    def stale_reason(self) -> str | None:
        """The mirror or the hub listed again and compared with files.json."""
        import json

        listing = json.loads(self.listing.read_text())
        opts = self.options or DownloadOptions()
        spec = self.spec()
        patterns = self._patterns()
        if listing.get("mode") == "local":
            now = hub.list_mirror(self.local_root, "", patterns)
        elif listing.get("mode") == "mirror":
            now = hub.list_mirror(opts.mirror_root, spec.repo_id, patterns)
        elif os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            return None  # offline on purpose: use the files already downloaded
        else:
            try:
                commit = hub.resolve_commit(spec.repo_id, spec.repo_type, spec.revision, endpoint=opts.endpoint,
                                            retries=min(opts.retries, 1), backoff_s=opts.backoff_s)
                now = hub.remote_listing(spec.repo_id, spec.repo_type, commit, patterns, endpoint=opts.endpoint,
                                         retries=min(opts.retries, 1), backoff_s=opts.backoff_s)
            except hub.DownloadError as e:
                raise hub.DownloadError(f"{e} (checking whether the files downloaded earlier are still the "
                                        f"hub's; set HF_HUB_OFFLINE=1 to build from them as they are)") from None
        changes = hub.listing_changes(listing["files"], now)
        return f"listing changed: {changes}" if changes else None

    def _patterns(self) -> list[str]:
        patterns: list[str] = []
        for m in self.members:  # a group reads the union of its members' files
            for p in self.ctx.specs[m].allow_patterns:
                if p not in patterns:
                    patterns.append(p)
        return patterns
