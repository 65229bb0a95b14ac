"""Many processes on one node: `sftops train` relaunches itself under torchrun.

When ``train.num_processes`` > 1 and this process is not already a torchrun worker, the train
stage writes its resolved params to a JSON file and runs

    python -m torch.distributed.run --standalone --nproc_per_node N [launch options] \\
        -m sftops.modeling.launch <params.json> [--resume]

Every worker then calls :func:`sftops.modeling.train.run_train` with the same params: one GPU
each (NCCL), or one CPU gloo worker each without GPUs; ``train.distributed`` picks DDP or FSDP
in the training loop. Rank 0 writes the model and the train report, which the launching process
reads back, so DVC's stage command and the Prefect task (both go through ``run_train``) launch
the same way. Launch options per strategy (torchrun flags, environment) live in
``infra/launch/<ddp|fsdp>.yaml``; built-in defaults apply when that file is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sftops.config import Params, TrainParams
from sftops.errors import SftopsError

LAUNCH_CONFIG_DIR = Path("infra") / "launch"
DEFAULT_LAUNCH: dict[str, Any] = {"torchrun": {"max_restarts": 0}, "env": {}}


def is_worker() -> bool:
    """Whether this process was started by torchrun (or another launcher setting RANK)."""
    return "LOCAL_RANK" in os.environ or "RANK" in os.environ


def needs_launch(cfg: TrainParams) -> bool:
    return cfg.num_processes > 1 and not is_worker()


def launch_config(distributed: str, root: Path | None = None) -> dict[str, Any]:
    """``infra/launch/<distributed>.yaml`` under ``root`` (default: the working directory)."""
    import yaml

    path = (root or Path.cwd()) / LAUNCH_CONFIG_DIR / f"{distributed}.yaml"
    if not path.is_file():
        return {key: dict(value) for key, value in DEFAULT_LAUNCH.items()}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SftopsError(f"not valid YAML ({exc})", file=path) from exc
    if not isinstance(data, dict) or not set(data) <= {"torchrun", "env", "description"}:
        raise SftopsError("expected keys torchrun, env (and description)", file=path)
    return {
        "torchrun": dict(data.get("torchrun") or {}),
        "env": {str(k): str(v) for k, v in (data.get("env") or {}).items()},
    }


def torchrun_command(
    cfg: TrainParams, params_file: Path, resume: bool, config: dict[str, Any]
) -> list[str]:
    """The torchrun command line for this node.

    >>> cfg = TrainParams(num_processes=2)
    >>> cmd = torchrun_command(cfg, Path("p.json"), True, {"torchrun": {"max_restarts": 0}})
    >>> cmd[1:]  # doctest: +NORMALIZE_WHITESPACE
    ['-m', 'torch.distributed.run', '--standalone', '--nnodes=1', '--nproc_per_node=2',
     '--max_restarts=0', '-m', 'sftops.modeling.launch', 'p.json', '--resume']
    """
    flags = [f"--{key}={value}" for key, value in config.get("torchrun", {}).items()]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1"]
    command += [f"--nproc_per_node={cfg.num_processes}", *flags]
    command += ["-m", "sftops.modeling.launch", str(params_file)]
    return command + (["--resume"] if resume else [])


def launch_train(params: Params, resume: bool = False) -> dict[str, Any]:
    """Run the train stage in ``train.num_processes`` torchrun workers; the rank-0 summary."""
    cfg = params.train
    config = launch_config(cfg.distributed)
    _check_devices(cfg)
    report = Path(params.paths.report("train"))
    before = report.stat().st_mtime_ns if report.exists() else None
    with tempfile.TemporaryDirectory(prefix="sftops-launch-") as tmp:
        params_file = Path(tmp) / "params.json"
        params_file.write_text(json.dumps(params.to_dict()))
        env = {**os.environ, **config["env"]}
        # each CPU worker gets its share of the cores, not all of them (oversubscription)
        if not _cuda_count():
            share = max(1, (os.cpu_count() or 1) // cfg.num_processes)
            env.setdefault("OMP_NUM_THREADS", str(share))
        done = subprocess.run(torchrun_command(cfg, params_file, resume, config), env=env)
    if done.returncode != 0:
        raise SftopsError(
            f"{cfg.num_processes} torchrun workers failed (exit {done.returncode}); "
            "their errors are above",
            file="params.yaml",
            key="train.num_processes",
        )
    if not report.exists() or report.stat().st_mtime_ns == before:
        raise SftopsError("torchrun workers exited without writing the train report", file=report)
    summary: dict[str, Any] = json.loads(report.read_text())
    summary.pop("history", None)
    return summary


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _check_devices(cfg: TrainParams) -> None:
    gpus = _cuda_count()
    wants_gpu = cfg.device == "cuda" or (cfg.device == "auto" and gpus > 0)
    if wants_gpu and gpus < cfg.num_processes:
        raise SftopsError(
            f"asks for {cfg.num_processes} processes, one per GPU, but {gpus} GPU(s) are visible",
            file="params.yaml",
            key="train.num_processes",
        )


def worker_main(argv: list[str] | None = None) -> int:
    """Entry of each torchrun worker: ``<params.json> [--resume]``."""
    from sftops.modeling.train import run_train

    args = list(sys.argv[1:] if argv is None else argv)
    resume = "--resume" in args
    files = [a for a in args if a != "--resume"]
    if len(files) != 1:
        print("usage: python -m sftops.modeling.launch PARAMS.json [--resume]", file=sys.stderr)
        return 2
    params = Params.model_validate(json.loads(Path(files[0]).read_text()))
    try:
        run_train(params, resume=resume)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
