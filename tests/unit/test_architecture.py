"""Imports point one way (README, "Architecture"): the layers below may import only what the
table allows. Every import statement counts, also those inside functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftops.mlops.stage_deps import imported_modules

ROOT = Path(__file__).resolve().parents[2]
CORE = {"config", "errors", "io", "schemas", "text", "rowkeys", "parallel", "plots", "reporting"}
STAGES = {"data", "augment", "modeling", "evaluation"}
MLOPS, SERVING, STACK = {"mlops"}, {"serving"}, {"stack"}
# layer -> the sftops layers it may import
ALLOWED: dict[str, set[str]] = {
    "config": {"errors"},  # a leaf: params are read by everything, so they import nothing else
    "core": CORE,
    "stages": CORE | STAGES,
    "mlops": CORE | STAGES | MLOPS,
    "serving": CORE | STAGES | MLOPS | SERVING,
    "stack": CORE | MLOPS | STACK,
}


def layer_of(top: str) -> str:
    if top == "config":
        return "config"
    if top in CORE:
        return "core"
    if top in STAGES:
        return "stages"
    return {"mlops": "mlops", "serving": "serving", "stack": "stack"}.get(top, "entry")


def sftops_modules() -> list[Path]:
    return sorted((ROOT / "sftops").rglob("*.py"))


@pytest.mark.parametrize("path", sftops_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_point_one_way(path: Path) -> None:
    relative = path.relative_to(ROOT / "sftops")
    top = relative.parts[0].removesuffix(".py")
    layer = layer_of(top)
    if layer == "entry":  # cli.py, __main__.py: the composition root may import anything
        return
    wrong = sorted(
        module
        for module in imported_modules(path, ROOT)
        if (module.startswith("sftops.") and module.split(".")[1] not in ALLOWED[layer] | {top})
        or module.split(".")[0] in {"tasks", "flows"}
    )
    assert not wrong, f"{relative} ({layer}) imports {wrong}"


def test_every_top_level_name_has_a_layer() -> None:
    tops = {p.relative_to(ROOT / "sftops").parts[0].removesuffix(".py") for p in sftops_modules()}
    assert tops - CORE - STAGES - MLOPS - SERVING - STACK == {"__init__", "__main__", "cli"}


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: an import inside a function of a stage module is found."""
    module = tmp_path / "sftops" / "data" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from sftops.mlops import registry\n")
    assert "sftops.mlops.registry" in imported_modules(module, tmp_path)
