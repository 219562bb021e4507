"""The checks of a family spec's values (lrgym/tasks/family_checks.py): every malformed bound, count
or range is refused naming the family and the key, from a TOML file and through overrides alike;
nothing is truncated or coerced."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tomllib

from lrgym.cli import main
from lrgym.tasks.family import TaskFamily, load_family, parse_instances

SOURCE = Path(__file__).resolve().parents[1] / "envs" / "mnist1d-family.toml"
SPLITS = {"train": [0, 100], "validation": [100, 200], "test": [200, 300]}


def family_of(**changes) -> TaskFamily:
    """mnist1d-family with ``changes`` to its distributions (``instances`` replaces the ranges)."""
    data = tomllib.loads(SOURCE.read_text())
    for key in ("kind", "description", "instances"):
        data.pop(key)
    instances = changes.pop("instances", SPLITS)
    return TaskFamily("fuzz", {**data, **changes}, instances)


BAD_INSTANCES = [
    ({**SPLITS, "train": [0.5, 10.7]}, r"instances.train must be \[start, stop\) with integers .* got \[0.5, 10.7\]"),
    ({**SPLITS, "train": 5}, r"instances.train must be .* got 5 \(int\)"),
    ({**SPLITS, "train": [math.nan, 5]}, r"instances.train must be .* got \[nan, 5\]"),
    ({**SPLITS, "train": ["0", 5]}, r"instances.train must be .* got \['0', 5\]"),
    ({**SPLITS, "train": [True, 5]}, r"instances.train must be .* got \[True, 5\]"),
    ({**SPLITS, "test": [300, 200]}, "instances.test must be"),
    ({"train": [0, 5]}, r"\[instances\] needs exactly train, validation, test"),
]


@pytest.mark.parametrize(("instances", "message"), BAD_INSTANCES)
def test_instance_bounds_must_be_integer_ranges(instances, message):
    with pytest.raises(ValueError, match=f"family 'fuzz': {message}"):
        family_of(instances=instances)


BAD_RANGES = [
    ({"steps": {"low": 200, "high": 1e30, "integer": True}}, "steps.high of an integer range must be a whole number"),
    ({"steps": {"low": 200, "high": math.inf, "integer": True}}, "steps.high must be finite, got inf"),
    ({"steps": {"low": 200, "high": math.inf}}, "steps.high must be finite, got inf"),
    ({"initial_lr": {"low": math.nan, "high": 0.1, "log": True}}, "initial_lr.low must be finite, got nan"),
    ({"batch_size": {"low": "32", "high": 64}}, r"batch_size.low must be a number, got '32' \(str\)"),
    ({"batch_size": {"low": 32.5, "high": 64, "integer": True}}, "batch_size.low of an integer range must be a whole"),
    ({"batch_size": {"low": 64, "high": 32, "integer": True}}, "batch_size: a range needs low <= high"),
    ({"batch_size": {"low": 32, "high": 64, "integer": "yes"}}, "batch_size.integer must be true or false"),
    ({"initial_lr": {"low": 0, "high": 0.1, "log": True}}, "initial_lr: a log range needs low > 0"),
]


@pytest.mark.parametrize(("change", "message"), BAD_RANGES)
def test_a_range_with_a_bound_that_is_not_a_finite_number_names_its_key(change, message):
    with pytest.raises(ValueError, match=f"family 'fuzz' {message}"):
        family_of(**change)


@pytest.mark.parametrize("decisions", [1.5, 0, "20", True, {"low": 1, "high": 3}])
def test_decisions_must_be_a_whole_count(decisions):
    with pytest.raises(ValueError, match="family 'fuzz': decisions must be an integer >= 1"):
        family = family_of(decisions=decisions)
        family.instance(0)


def test_an_override_is_checked_when_the_family_is_loaded():
    with pytest.raises(ValueError, match="decisions must be an integer >= 1, got 1.5"):
        load_family("mnist1d-family", decisions=1.5)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 40.5"):
        load_family("mnist1d-family", steps=40.5)


@pytest.mark.parametrize(("text", "message"), [
    ("test:-3", r"give N \(how many instances, >= 1\) or FIRST-LAST \(positions 0..999 of the test split"),
    ("test:0", r"N \(how many instances\) must be >= 1, got 0"),
    ("test:5-2", "FIRST 5 is after LAST 2"),
    ("test:1.5", "got '1.5'"),
    ("test:1000-1000", r"has 1000 instance\(s\) \(positions 0..999\)"),
])
def test_instances_option_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_instances(text, load_family("mnist1d-family"))


def test_a_family_file_with_a_bad_value_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    (tmp_path / "envs").mkdir()
    (tmp_path / "agents").mkdir()
    text = SOURCE.read_text().replace("decisions = 20", "decisions = 1.5")
    (tmp_path / "envs" / "fuzz.toml").write_text(text)
    monkeypatch.setenv("LRGYM_HOME", str(tmp_path))
    assert main(["episode", "fuzz", "--instance", "200000"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lrgym episode: error: family 'fuzz': decisions must be an integer >= 1, got 1.5 (float)")
