"""Training checkpoints that travel: mirrored to a DVC remote as they are written, so a train
stage retried on another machine (the first one died) resumes from the last checkpoint instead
of step 0.

On the remote, next to DVC's own objects::

    <remote>/sftops-checkpoints/<key>/step-NNNNNN/checkpoint/   the last pushed checkpoint
    <remote>/sftops-checkpoints/<key>/step-NNNNNN/best/         the best weights at that time
    <remote>/sftops-checkpoints/<key>/latest.json               its name, file sizes and MD5s

``<key>`` is the train stage's identity as DVC sees it: the hashes of its deps (the data and
the code it imports) and its ``train`` params. A checkpoint is resumed only by a stage that
would compute the same thing, on whatever machine, since the data stages give the same bytes
everywhere. ``latest.json`` is written after the files, so a reader never sees half a push.

Why not a DVC output of the stage: a ``cache: false`` output is missing from every fresh run
workspace, which makes DVC rerun an unchanged train stage; a cached one copies the optimizer
state (twice the model) into the cache on every run. Mirrored here, checkpoints cost nothing
when the stage is skipped, and are removed from the remote when the stage completes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.modeling.checkpoint import latest_checkpoint

log = logging.getLogger("sftops.mlops.checkpoints")

PREFIX = "sftops-checkpoints"
LATEST = "latest.json"
BEST = "best"  # the best weights so far, beside the step folders (sftops.modeling.train)
KEY_FILE = "stage_key"  # in paths.checkpoints_dir: the key its checkpoints were trained under
ENV_REMOTE = "SFTOPS_CHECKPOINT_REMOTE"


def mirror_remote(params: Params) -> str | None:
    """The DVC remote checkpoints go to: ``checkpoints.remote``, else the environment's."""
    return params.checkpoints.remote or os.environ.get(ENV_REMOTE) or None


def stage_key(root: str | Path, stage: str = "train") -> str:
    """SHA-256 over the stage's deps as DVC hashes them (files, folders, params sections)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        (found,) = repo.stage.collect(stage)
        found.save_deps(allow_missing=True)  # missing inputs: the stage says which, later
        parts = [[dep.def_path, str(dep.hash_info)] for dep in found.deps]
    return hashlib.sha256(json.dumps(sorted(parts)).encode()).hexdigest()[:32]


def open_remote(root: str | Path, remote: str) -> tuple[Any, str]:
    """The filesystem and base path of a DVC remote of the project at ``root``."""
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            found = repo.cloud.get_remote(None if remote == "default" else remote)
    except Exception as err:  # not a DVC project, no such remote, a config error
        raise SftopsError(f"checkpoints.remote {remote!r}: {err}") from err
    return found.fs, found.path


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RemoteCheckpoints:
    """The checkpoints of one stage key on one DVC remote (any of DVC's filesystems: a local
    folder, S3, GCS, ...; credentials as DVC finds them: remote config or environment), as
    :func:`open_remote` opens it."""

    def __init__(self, fs: Any, path: str, key: str, name: str) -> None:
        self.fs = fs
        self.base = fs.join(path, PREFIX, key)
        self.where = f"{name} ({fs.unstrip_protocol(self.base)})"

    def latest(self) -> dict[str, Any] | None:
        """The last complete push (``{"step": "step-000016", "files": {...}}``), if any."""
        path = self.fs.join(self.base, LATEST)
        if not self.fs.exists(path):
            return None
        latest: dict[str, Any] = json.loads(self.fs.cat_file(path))
        return latest

    def push(self, checkpoint: Path) -> None:
        """Upload a complete checkpoint folder with the ``best`` weights beside it (the final
        model is the best one), then point ``latest.json`` at them, then remove the previous
        push. The files are hard-linked first: training replaces ``best`` while this uploads."""
        staging = checkpoint.parent / f".push-{checkpoint.name}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _link_tree(checkpoint, staging / "checkpoint")
            if (checkpoint.parent / BEST).is_dir():
                _link_tree(checkpoint.parent / BEST, staging / BEST)
            files = {
                p.relative_to(staging).as_posix(): {"size": p.stat().st_size, "md5": file_md5(p)}
                for p in sorted(staging.rglob("*"))
                if p.is_file()
            }
            before = self.latest()
            target = self.fs.join(self.base, checkpoint.name)
            for name in files:
                self.fs.put_file(str(staging / name), self.fs.join(target, *name.split("/")))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        manifest = {"step": checkpoint.name, "files": files, "pushed_at": time.time()}
        self.fs.pipe_file(self.fs.join(self.base, LATEST), json.dumps(manifest).encode())
        if before and before["step"] != checkpoint.name:
            self.fs.rm(self.fs.join(self.base, before["step"]), recursive=True)

    def pull(self, into: Path) -> Path | None:
        """Download the latest push into ``into/<step>`` and ``into/best`` (checked against the
        manifest's sizes and MD5s; a half-downloaded folder is never left under its name)."""
        latest = self.latest()
        if latest is None:
            return None
        partial = into / f".pull-{latest['step']}"
        shutil.rmtree(partial, ignore_errors=True)
        source = self.fs.join(self.base, latest["step"])
        for name, expected in latest["files"].items():
            local = partial / name
            local.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self.fs.join(source, *name.split("/")), str(local))
            if local.stat().st_size != expected["size"] or file_md5(local) != expected["md5"]:
                raise SftopsError(
                    f"checkpoint {latest['step']} on {self.where}: {name} differs from its "
                    "manifest (a push overwrote it while downloading?)"
                )
        target = into / latest["step"]
        for name, where in ((BEST, into / BEST), ("checkpoint", target)):
            if (partial / name).is_dir():
                shutil.rmtree(where, ignore_errors=True)
                (partial / name).rename(where)
        shutil.rmtree(partial, ignore_errors=True)
        return target

    def clear(self) -> None:
        if self.fs.exists(self.base):
            self.fs.rm(self.base, recursive=True)


def _link_tree(source: Path, target: Path) -> None:
    """A snapshot of ``source`` that costs no copy (hard links; a copy across filesystems)."""
    shutil.copytree(source, target, copy_function=_link_or_copy)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _step_of(name: str) -> int:
    return int(name.split("-")[1])


def _step(folder: Path | None) -> int:
    return _step_of(folder.name) if folder else -1


class CheckpointPusher:
    """A thread that pushes each new complete checkpoint of a folder while training goes on
    (uploads are I/O; the training loop does not wait for them). When checkpoints come faster
    than they upload, the ones in between are skipped: only the newest matters."""

    def __init__(
        self, folder: Path, push: Callable[[Path], None], pushed_step: int, interval: float = 1.0
    ) -> None:
        self.folder, self._push, self.interval = folder, push, interval
        self._last = pushed_step  # the step the remote has (-1: none)
        self.pushed: list[str] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-push", daemon=True)

    def __enter__(self) -> CheckpointPusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.push_new()  # the last checkpoint, written after the last poll

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.push_new()

    def push_new(self) -> None:
        newest = latest_checkpoint(self.folder)
        if newest is None or _step(newest) <= self._last:
            return
        started = time.perf_counter()
        try:
            self._push(newest)
        except (FileNotFoundError, shutil.Error):  # training removed it (keeps two): next one
            return
        except Exception as err:  # the remote is down: training goes on, the log says so
            self.failures += 1
            log.warning("checkpoint %s not pushed: %s", newest.name, err)
            return
        self._last = _step(newest)
        self.pushed.append(newest.name)
        log.info("checkpoint %s pushed in %.1fs", newest.name, time.perf_counter() - started)


@contextmanager
def mirrored_checkpoints(params: Params, root: str | Path = ".") -> Iterator[bool]:
    """Around a train stage: bring the newest checkpoint of this stage key (local or on the
    remote) into ``paths.checkpoints_dir``, push new ones while training, and clear the
    remote's when training completes. Yields whether there is a checkpoint to resume from.
    Without a remote (``checkpoints.remote`` / ``$SFTOPS_CHECKPOINT_REMOTE``) it does nothing
    and yields False: training starts fresh, as it always did."""
    remote = mirror_remote(params)
    if remote is None:
        yield False
        return
    folder = Path(params.paths.checkpoints_dir)
    fs, path = open_remote(root, remote)
    key = stage_key(root)
    mirror = RemoteCheckpoints(fs, path, key, remote)
    key_file = folder / KEY_FILE
    if not key_file.is_file() or key_file.read_text().strip() != key:
        shutil.rmtree(folder, ignore_errors=True)  # trained on other data, code or params
    folder.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    local, latest = latest_checkpoint(folder), mirror.latest()
    if latest and _step_of(latest["step"]) > _step(local):
        started = time.perf_counter()
        local = mirror.pull(folder)
        log.info(
            "resuming from %s pulled from %s in %.1fs",
            latest["step"],
            mirror.where,
            time.perf_counter() - started,
        )
    elif local is not None:
        log.info("resuming from the local %s (stage key %s)", local.name, key)
    on_remote = _step_of(latest["step"]) if latest else -1
    with CheckpointPusher(folder, mirror.push, on_remote):
        yield local is not None
    mirror.clear()  # the stage's outputs are complete: its checkpoints are not needed
    log.info("training complete: checkpoints of stage key %s removed from %s", key, mirror.where)
