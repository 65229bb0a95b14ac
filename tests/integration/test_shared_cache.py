"""Separate clones on one machine share `$SFTOPS_CACHE_DIR`: two processes, each in its own
clone, populating the same cache at the same moment end with one complete copy, built once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# A built-in model whose materialisation is slow and logs each build: the real one (SmolLM2,
# dequantised from GGUF) takes 16-25 s and 1 GB, the locking around it is the same.
MODEL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from sftops.config import load_params
    from sftops.modeling import models

    class SlowModel:
        def materialise(self, out: Path) -> None:
            with open(os.environ["BUILD_LOG"], "a") as log:
                log.write(f"{os.getpid()}\\n")
            (out / "model.safetensors").write_bytes(os.urandom(1 << 20))
            time.sleep(1.5)
            (out / "config.json").write_text('{"model_type": "test"}')

    models.BUILTIN_MODELS["slow-test-model"] = SlowModel()
    Path(os.environ["READY"] + str(os.getpid())).touch()
    while not Path(os.environ["GO"]).exists():  # both processes start building together
        time.sleep(0.01)
    cache = load_params("params.yaml").paths.cache_dir  # cwd: this clone
    print(models.resolve_model_path("slow-test-model", cache))
    """
)

WORDNET_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from sftops.augment.wordnet import prepare_wordnet
    from sftops.config import load_params

    Path(os.environ["READY"] + str(os.getpid())).touch()
    while not Path(os.environ["GO"]).exists():
        time.sleep(0.01)
    cache = load_params("params.yaml").paths.cache_dir
    root = prepare_wordnet(cache, Path(sys.argv[1]))
    # what load_wordnet reads next: every file whole, even while the other process works
    for src in Path(sys.argv[1]).iterdir():
        got = (root / "corpora" / "wordnet" / src.name).read_bytes()
        assert got == src.read_bytes(), f"{src.name}: {len(got)} bytes"
    print(root)
    """
)


def clones(tmp_path: Path, n: int = 2) -> list[Path]:
    """Checkouts holding the project's params.yaml (what decides the cache path)."""
    out = []
    for i in range(n):
        clone = tmp_path / f"clone{i}"
        clone.mkdir()
        shutil.copy(ROOT / "params.yaml", clone / "params.yaml")
        out.append(clone)
    return out


def run_together(script: str, cwds: list[Path], env: dict[str, str], *args: str) -> list[str]:
    """Start one process per clone, release them at once, return their outputs."""
    ready, go = Path(env["READY"]), Path(env["GO"])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cwd in cwds
    ]
    try:
        for _ in range(6000):  # the imports take a few seconds on a busy machine
            if len(list(ready.parent.glob(ready.name + "*"))) == len(procs):
                break
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    return [out.strip() for out, _ in outputs]


@pytest.fixture
def shared_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SFTOPS_CACHE_DIR": str(tmp_path / "shared-cache"),
        "BUILD_LOG": str(tmp_path / "builds.log"),
        "READY": str(tmp_path / "ready-"),
        "GO": str(tmp_path / "go"),
    }


def test_two_clones_building_the_base_model_at_once_build_it_once(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    paths = run_together(MODEL_SCRIPT, clones(tmp_path), shared_env)
    shared = tmp_path / "shared-cache" / "sftops" / "base_models" / "slow-test-model"
    assert paths == [str(shared), str(shared)]
    assert len((tmp_path / "builds.log").read_text().split()) == 1  # one build, one waited
    assert (shared / "model.safetensors").stat().st_size == 1 << 20
    assert (shared / "config.json").read_text() == '{"model_type": "test"}'
    leftovers = [p.name for p in shared.parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == []
    for clone in ("clone0", "clone1"):
        assert not (tmp_path / clone / ".cache").exists()  # nothing cached per clone


def test_two_clones_laying_out_wordnet_at_once_get_complete_files(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    from sftops.augment.wordnet import REQUIRED_FILES, lexnames_text

    source = tmp_path / "debian-wordnet"
    source.mkdir()
    for i, name in enumerate(REQUIRED_FILES):
        (source / name).write_bytes(bytes([i % 251]) * (1 << 20))  # slow enough to overlap
    roots = run_together(WORDNET_SCRIPT, clones(tmp_path), shared_env, str(source))
    root = tmp_path / "shared-cache" / "sftops" / "nltk_data"
    assert roots == [str(root), str(root)]
    target = root / "corpora" / "wordnet"
    for name in REQUIRED_FILES:
        assert (target / name).read_bytes() == (source / name).read_bytes(), name
    assert (target / "lexnames").read_text() == lexnames_text()
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]


def test_without_the_setting_each_clone_keeps_its_own_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.config import load_params

    monkeypatch.delenv("SFTOPS_CACHE_DIR", raising=False)
    clone = clones(tmp_path, 1)[0]
    env = {k: v for k, v in os.environ.items() if k != "SFTOPS_CACHE_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", "from sftops.config import load_params as l; "
         "print(l('params.yaml').paths.cache_dir)"],
        cwd=clone, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert done.stdout.strip() == load_params(ROOT / "params.yaml").paths.cache_dir
    assert done.stdout.strip() == ".cache/sftops"
