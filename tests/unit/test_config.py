from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sftops.config import Params, apply_overrides, load_params, parse_override
from sftops.errors import ConfigError


def test_repo_params_yaml_matches_the_embedded_defaults(repo_root: Path) -> None:
    assert load_params(repo_root / "params.yaml") == Params()


def test_missing_params_file_gives_embedded_defaults(tmp_path: Path) -> None:
    assert load_params(tmp_path / "absent.yaml") == Params()


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("clean:\n  min_output_chars: -1\n", "p.yaml: clean.min_output_chars: must be ≥ 0"),
        ("clean:\n  min_len: 3\n", "p.yaml: clean.min_len: unknown key"),
        (
            "split:\n  validation: 0.6\n  test: 0.5\n",
            "p.yaml: split: validation + test must be < 1",
        ),
        (
            "ingest:\n  sources:\n    - {path: a.json, weight: 2}\n",
            "p.yaml: ingest.sources[0].weight: must be ≤ 1",
        ),
        (
            "clean:\n  near_dedup:\n    num_perm: 100\n",
            "p.yaml: clean.near_dedup: num_perm must be a multiple of 8",
        ),
        ("- just\n- a list\n", "p.yaml: top level must be a mapping of sections"),
        ("clean: [unclosed\n", "p.yaml:2: not valid YAML"),
    ],
)
def test_bad_params_give_one_line_naming_the_key(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value).replace(str(tmp_path) + "/", "")
    assert message.startswith(expected)
    assert "\n" not in message


def test_overrides_are_applied_and_validated(tmp_path: Path) -> None:
    params = load_params(tmp_path / "none.yaml", {"clean.max_chars": 100, "split.salt": "x"})
    assert params.clean.max_chars == 100 and params.split.salt == "x"
    with pytest.raises(ConfigError, match=r"clean\.max_chars: must be ≥ 1"):
        load_params(tmp_path / "none.yaml", {"clean.max_chars": 0})


def test_parse_override_reads_values_as_yaml() -> None:
    assert parse_override("clean.languages=[en]") == ("clean.languages", ["en"])
    assert parse_override("clean.exact_dedup=false") == ("clean.exact_dedup", False)
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_apply_overrides_does_not_mutate_its_input() -> None:
    raw = {"a": {"b": 1}}
    apply_overrides(raw, {"a.b": 2})
    assert raw == {"a": {"b": 1}}


def test_params_round_trip_through_yaml() -> None:
    params = Params()
    assert Params.model_validate(yaml.safe_load(yaml.safe_dump(params.to_dict()))) == params
