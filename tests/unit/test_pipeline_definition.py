"""dvc.yaml, params.yaml, the CLI and the flows agree on stage names, order, deps and outs."""

from __future__ import annotations

import inspect
import itertools
import re
from pathlib import Path

import yaml

from flows import data_refresh as flow_module
from flows import retrain as retrain_module
from sftops.config import Params
from sftops.mlops.pipeline import DATA_STAGES, STAGE_MODULES, STAGES
from sftops.mlops.stage_deps import stage_code

ROOT = Path(__file__).resolve().parents[2]


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_stages_match_the_cli_and_flow_order() -> None:
    assert tuple(dvc_stages()) == STAGES
    source = inspect.getsource(flow_module.data_refresh)
    source = inspect.getsource(flow_module.data_stages)
    positions = [source.index(f'"{name}": {name}(params, root)') for name in DATA_STAGES]
    assert positions == sorted(positions)
    retrain = inspect.getsource(retrain_module.retrain)
    assert (
        retrain.index("data_stages(")
        < retrain.index('summaries["train"] = train(params, ws.root)')
        < retrain.index('summaries["evaluate"] = evaluate(params, ws.root)')
        < retrain.index("champion_comparison(")
        < retrain.index("register(")
    )


def test_each_stage_depends_on_exactly_the_code_it_imports_and_its_params_section() -> None:
    for name, stage in dvc_stages().items():
        assert stage["cmd"] == f"sftops {name}"
        code_deps = sorted(d for d in stage["deps"] if d.startswith("sftops/"))
        imported = stage_code(STAGE_MODULES[name], ROOT)
        missing = sorted(set(imported) - set(code_deps))
        extra = sorted(set(code_deps) - set(imported))
        assert not missing, f"{name}: imported but not a dep in dvc.yaml: {missing}"
        assert not extra, f"{name}: a dep in dvc.yaml but not imported: {extra}"
        assert STAGE_MODULES[name].replace(".", "/") + ".py" in code_deps
        assert "sftops/config.py" not in code_deps  # the params sections carry it
        assert name in stage["params"]
        assert name in Params.model_fields or f"{name}_" in Params.model_fields


def test_each_stage_reads_what_the_previous_one_writes() -> None:
    stages = list(dvc_stages().values())
    for before, after in itertools.pairwise(stages):
        assert before["outs"][0] in after["deps"]


def test_dvc_paths_are_the_params_paths() -> None:
    paths = Params().paths
    outs = [o for stage in dvc_stages().values() for o in stage["outs"]]
    rendered = [
        re.sub(r"\$\{paths\.(\w+)\}", lambda m: getattr(paths, m.group(1)), o) for o in outs
    ]
    assert str(paths.split("train")) in rendered
    assert str(paths.quarantine("clean")) in rendered
    assert str(paths.report("clean")) in rendered
    assert paths.model_dir in rendered
    assert all("${" not in o for o in rendered)


def test_stage_code_follows_imports_inside_functions_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "sftops"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""doc"""\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "config.py").write_text("X = 1\n")
    (pkg / "leaf.py").write_text("import json\n")
    (pkg / "other.py").write_text("")
    (pkg / "sub" / "helper.py").write_text("from ..leaf import *\n")
    (pkg / "sub" / "stage.py").write_text(
        "from sftops.config import X\ndef run():\n    from sftops.sub import helper\n"
    )
    assert stage_code("sftops.sub.stage", tmp_path) == [
        "sftops/leaf.py",
        "sftops/sub/helper.py",
        "sftops/sub/stage.py",
    ]


def test_stage_code_counts_the_package_init_a_submodule_import_runs(tmp_path: Path) -> None:
    pkg = tmp_path / "sftops"
    (pkg / "io").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "io" / "__init__.py").write_text("def write(): ...\n")
    (pkg / "io" / "readers.py").write_text("")
    (pkg / "stage.py").write_text("from sftops.io.readers import read\n")
    assert stage_code("sftops.stage", tmp_path) == [
        "sftops/io/__init__.py",
        "sftops/io/readers.py",
        "sftops/stage.py",
    ]
