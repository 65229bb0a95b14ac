"""Where a served model comes from: a :class:`ModelSource` gives a local model folder and a
*version label* (``resolve()``); ``version_label()`` is the cheap check polled to notice a new
version.

- :class:`LocalFolderSource`: a model folder (or anything
  :func:`sftops.modeling.models.resolve_model_path` accepts: a built-in name, a ``.gguf`` file).
  Its label is a fingerprint of the folder's config and weight files, so re-saving the folder
  counts as a new version.
- :class:`RegistryAliasSource`: ``models:/<name>@champion`` in the MLflow registry, through
  ``sftops.mlops.registry`` (imported lazily: ``champion_version`` / ``download_champion``).
  The label names the version the alias points at, so moving the alias is noticed by the poller.

:func:`model_source` turns the command-line spelling (a path or ``models:/<name>@<alias>``)
into a source; :func:`default_source` is what ``sftops serve`` / ``chat`` serve without one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sftops.errors import SftopsError

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = ".cache/sftops"
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


@runtime_checkable
class ModelSource(Protocol):
    """Where a served model comes from."""

    def describe(self) -> str:
        """What to show on /health, e.g. ``models:/sft@champion`` or a folder path."""
        ...

    def version_label(self) -> str:
        """A cheap label of the current version (polled; a change triggers a reload)."""
        ...

    def resolve(self) -> tuple[Path, str]:
        """A local model folder of the current version and that version's label."""
        ...


def _folder_fingerprint(folder: Path) -> str:
    """A short hash of the names, sizes and mtimes of the config and weight files."""
    digest = hashlib.sha256()
    files = [folder / "config.json", *sorted(folder.iterdir())] if folder.is_dir() else [folder]
    for path in files:
        if path.is_file() and (path.name == "config.json" or path.suffix in _WEIGHT_SUFFIXES):
            stat = path.stat()
            digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


@dataclass
class LocalFolderSource:
    """A local model folder (or built-in name / ``.gguf`` file, see ``resolve_model_path``)."""

    path: str | Path
    cache_dir: str | Path = DEFAULT_CACHE_DIR
    note: str = ""  # why this folder is served, shown on /health

    def describe(self) -> str:
        return f"{self.path} ({self.note})" if self.note else str(self.path)

    def _folder(self) -> Path:
        from sftops.modeling.models import resolve_model_path

        return resolve_model_path(str(self.path), self.cache_dir)

    def version_label(self) -> str:
        folder = Path(self.path).expanduser()
        if not folder.exists():  # a built-in name: its cached folder never changes
            folder = self._folder()
        return f"local-{_folder_fingerprint(folder)}"

    def resolve(self) -> tuple[Path, str]:
        folder = self._folder()
        return folder, f"local-{_folder_fingerprint(folder)}"


@dataclass
class RegistryAliasSource:
    """A registered model version behind an MLflow alias, ``models:/<name>@<alias>``.

    Uses ``sftops.mlops.registry.champion_version(name)`` and ``download_champion(name, dst)``
    (imported when first needed, so serving a local folder never touches MLflow). Only the
    ``champion`` alias is provided by the registry module. Downloads go to
    ``<cache_dir>/serving/<name>/<label>/`` and are reused.
    """

    name: str
    alias: str = "champion"
    cache_dir: str | Path = DEFAULT_CACHE_DIR

    def describe(self) -> str:
        return f"models:/{self.name}@{self.alias}"

    def _registry(self) -> Any:
        if self.alias != "champion":
            raise SftopsError(
                f"only the 'champion' alias can be served (got '{self.alias}')",
                key=self.describe(),
            )
        from importlib import import_module

        return import_module("sftops.mlops.registry")

    def _label(self, registry: Any) -> str:
        version = registry.champion_version(self.name)
        if version is None:
            raise SftopsError("no version has the alias yet", key=self.describe())
        number = getattr(version, "version", version)  # a number or an MLflow ModelVersion
        return f"{self.name}@{self.alias}=v{number}"

    def version_label(self) -> str:
        return self._label(self._registry())

    def resolve(self) -> tuple[Path, str]:
        registry = self._registry()
        for _ in range(3):  # the alias may move during the download: retry until it holds still
            label = self._label(registry)
            dst = Path(self.cache_dir) / "serving" / self.name / re.sub(r"[^\w.=-]", "_", label)
            path = dst if (dst / "config.json").is_file() else None
            if path is None:
                got = registry.download_champion(self.name, dst)
                if got is None:
                    raise SftopsError("no version has the alias yet", key=self.describe())
                path = Path(got)
            if self._label(registry) == label:
                return path, label
        raise SftopsError("the alias kept moving while downloading", key=self.describe())


def model_source(spec: str | Path, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> ModelSource:
    """``models:/<name>@<alias>`` -> :class:`RegistryAliasSource`; anything else is local."""
    text = str(spec).strip()
    if text.startswith("models:/"):
        match = MODELS_URI.match(text)
        if match is None:
            raise SftopsError(
                f"cannot serve '{text}': use models:/<name>@<alias> (e.g. models:/sft@champion)"
            )
        return RegistryAliasSource(match["name"], match["alias"], cache_dir)
    return LocalFolderSource(text, cache_dir)


def default_source(
    model: str | None, name: str, model_dir: str | Path, cache_dir: str | Path
) -> ModelSource:
    """What `sftops serve` / `chat` serve: ``model`` when given; else the registry's
    ``champion`` of ``name``; else (no registry or no champion yet) the local ``model_dir``,
    flagged as such on /health, never silently an unpromoted run's output."""
    if model:
        return model_source(model, cache_dir)
    from sftops.mlops import registry

    try:
        champion = registry.champion_version(name)
    except SftopsError as err:  # a tracking server that does not answer
        log.warning("registry unavailable (%s)", err)
        champion = None
    if champion is not None:
        return RegistryAliasSource(name, registry.CHAMPION, cache_dir)
    log.warning("no %s@champion in the registry: serving the local folder %s", name, model_dir)
    return LocalFolderSource(model_dir, cache_dir, note="local folder: no registry champion")
