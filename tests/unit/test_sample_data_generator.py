"""scripts/make_sample_data.py regenerates the committed data/sample byte for byte."""

from __future__ import annotations

import ast
import doctest
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_sample_data.py"
SAMPLE = ROOT / "data" / "sample"


def test_regenerated_sample_is_byte_identical_to_the_committed_one(tmp_path: Path) -> None:
    # A fresh process: the generator's random stream and uniqueness sets are module state.
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "verbatim duplicate rows (extra copies): 40" in out.stdout
    committed = sorted(p.name for p in SAMPLE.iterdir() if p.is_file())
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_every_defect_step_says_which_stage_catches_it() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    steps = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "DEFECT_STEPS"
    )
    names = [(e.value.id, e.attr) for e in steps.elts]
    assert len(names) == 15
    for module, func in names:
        src = (ROOT / "scripts" / "sample_data" / f"{module}.py").read_text(encoding="utf-8")
        fn = next(
            n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == func
        )
        doc = ast.get_docstring(fn) or ""
        assert "``ingest``" in doc or "``clean``" in doc, (module, func)


def test_generator_doctests() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from sample_data import common
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert doctest.testmod(common).failed == 0
