"""Plug-in references in spec files (lrgym/tasks/plugins.py): read relative to the spec's folder,
written as absolute file references, names left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrgym.tasks.plugins import anchor_references, anchored, is_reference, split_reference

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)


@given(module=st.lists(identifiers, min_size=1, max_size=3).map(".".join), function=identifiers)
def test_a_reference_splits_into_module_and_callable(module, function):
    reference = f"{module}:{function}"
    assert is_reference(reference) and split_reference(reference) == (module, function)


@given(name=st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True))
def test_a_registered_name_is_no_reference_and_stays_as_it_is(name, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp()
    assert not is_reference(name) and anchored(name, folder) == name


@pytest.mark.parametrize("reference", ["module:", ":function", "module:not-an-identifier", "a:b:"])
def test_a_malformed_reference_names_the_two_spellings(reference):
    with pytest.raises(ValueError, match="'package.module:function' or 'path/to/file.py:function'"):
        split_reference(reference, "dataset")


def test_files_are_read_relative_to_the_spec_folder(tmp_path):
    (tmp_path / "my_data.py").write_text("")
    (tmp_path / "lib").mkdir()
    folder = tmp_path.resolve()
    assert anchored("my_data:load", tmp_path) == f"{folder}/my_data.py:load"  # a module file beside the spec
    assert anchored("lib/models.py:build", tmp_path) == f"{folder}/lib/models.py:build"
    assert anchored("/elsewhere/models.py:build", tmp_path) == "/elsewhere/models.py:build"
    assert anchored("torchvision.models:resnet18", tmp_path) == "torchvision.models:resnet18"  # installed


def test_a_family_anchors_its_choices_and_the_tables_keyed_by_them(tmp_path):
    (tmp_path / "my_model.py").write_text("")
    table = {
        "model": ["mlp", "my_model:build"], "dataset": "mnist1d",
        "model_kwargs": {"mlp": {"hidden": [[8]]}, "my_model:build": {"width": [4, 8]}},
    }
    anchored_table = anchor_references(table, tmp_path, keyed=True)
    reference = f"{tmp_path.resolve()}/my_model.py:build"
    assert anchored_table["model"] == ["mlp", reference]
    assert anchored_table["model_kwargs"] == {"mlp": {"hidden": [[8]]}, reference: {"width": [4, 8]}}
    assert table["model"] == ["mlp", "my_model:build"]  # the caller's table is left as it was


def test_a_single_tasks_model_kwargs_are_keywords_not_keys(tmp_path):
    (tmp_path / "my_model.py").write_text("")
    table = anchor_references({"model": "my_model:build", "model_kwargs": {"my_model:x": 1}}, tmp_path, keyed=False)
    assert table["model"] == f"{Path(tmp_path).resolve()}/my_model.py:build"
    assert table["model_kwargs"] == {"my_model:x": 1}
