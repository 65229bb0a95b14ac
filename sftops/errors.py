"""User errors: typed, carrying the file, row and key, printed by the CLI as one line."""

from __future__ import annotations

from pathlib import Path


class SftopsError(Exception):
    """A problem with the user's input or configuration (not a bug): the CLI prints one line."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.row = row
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or ""
        if self.row is not None:
            where += f":{self.row}" if where else f"row {self.row}"
        if self.key:
            where += f": {self.key}" if where else self.key
        return f"{where}: {self.message}" if where else self.message


class ConfigError(SftopsError):
    """params.yaml (or an override) is invalid."""


class InputDataError(SftopsError):
    """An input file cannot be read at all (missing, empty, binary, unknown format)."""


class StageFailed(SftopsError):
    """A stage ran but its output is not usable (e.g. too many invalid rows)."""


class OutputWriteError(SftopsError):
    """An output could not be written (disk full, quota); its previous version is untouched."""
