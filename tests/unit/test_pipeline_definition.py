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
from sftops.pipeline import DATA_STAGES, STAGE_MODULES, STAGES

ROOT = Path(__file__).resolve().parents[2]


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_stages_match_the_cli_and_flow_order() -> None:
    assert tuple(dvc_stages()) == STAGES
    source = inspect.getsource(flow_module.data_refresh)
    positions = [source.index(f'"{name}": {name}(params)') for name in DATA_STAGES]
    assert positions == sorted(positions)
    retrain = inspect.getsource(retrain_module.retrain)
    assert (
        retrain.index("data_refresh(")
        < retrain.index('summaries["train"] = train(params)')
        < retrain.index('summaries["evaluate"] = evaluate(params)')
    )


def test_each_stage_depends_on_its_own_source_and_params_section() -> None:
    for name, stage in dvc_stages().items():
        assert stage["cmd"] == f"sftops {name}"
        module_file = STAGE_MODULES[name].replace(".", "/") + ".py"
        package = module_file.rsplit("/", 1)[0]
        assert module_file in stage["deps"] or package in stage["deps"], name
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
