"""The code a stage runs: the transitive imports of its module within the package (ast, every
import statement, also those inside functions). dvc.yaml lists exactly these files as the
stage's deps (a test checks it), so an edit to any of them reruns the stage and nothing else
does. ``sftops/config.py`` is left out on purpose: the stage's params sections carry that
dependency, and a docstring edit there must not rerun everything."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "sftops"
NOT_DEPS = {"sftops/config.py"}


def module_file(module: str, root: Path) -> Path | None:
    """``sftops.data.clean`` -> ``sftops/data/clean.py`` (or the package's ``__init__.py``)."""
    base = root / Path(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module name ``path`` imports (absolute, relative ones resolved), with
    ``from a import b`` counted as both ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*parts, node.module or ""] if p)
            else:
                base = node.module or ""
            found.add(base)
            # `from sftops.data import clean` imports a module, not a name
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _imports(path: Path, root: Path) -> set[str]:
    found = imported_modules(path, root)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def stage_code(module: str, root: Path) -> list[str]:
    """Files (relative, posix) of ``module`` and everything it imports from the package,
    package ``__init__`` files that hold no code and :data:`NOT_DEPS` excluded."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if path is None or path in seen:
            continue
        seen.add(path)
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first (sftops/io/ has code there)
        todo.extend(".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1))
        todo.extend(_imports(path, root))
    files = {
        p.relative_to(root).as_posix()
        for p in seen
        if not (p.name == "__init__.py" and not _has_code(p))
    }
    return sorted(files - NOT_DEPS)


def _has_code(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = tree.body[1:] if tree.body and isinstance(tree.body[0], ast.Expr) else tree.body
    return any(not isinstance(node, ast.Import | ast.ImportFrom) for node in body) or bool(body)


def main() -> None:
    """Print each stage's code deps (to paste into dvc.yaml)."""
    from sftops.mlops.pipeline import STAGE_MODULES

    root = Path(__file__).resolve().parents[2]
    for stage, module in STAGE_MODULES.items():
        print(f"{stage}:")
        for path in stage_code(module, root):
            print(f"      - {path}")


if __name__ == "__main__":
    main()
