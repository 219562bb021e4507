"""Plug-in references: a spec's ``dataset`` or ``model`` named by the Python callable that provides it.

Two spellings (the callable may be dotted, ``module:Class.method``):

- ``package.module:function``: the module is imported from ``sys.path`` (an installed
  package, or a folder on ``PYTHONPATH``);
- ``path/to/file.py:function``: the file is imported by its name, its folder joining
  ``sys.path`` as a script's folder does (so files beside it import each other).

In a spec *file*, a relative ``file.py`` is relative to the spec's folder, and
``module:function`` whose module is a file ``module.py`` beside the spec means that file.
:func:`anchor_references` writes both as absolute file references when the spec is
read, so that every process on the machine (workers, a run resumed elsewhere in the
folder tree) finds the same code. This module only reads and rewrites the text; the
import is :func:`lrgym.trainee.registry.import_reference`'s.

A reference runs code: it is the spec author's own, like a script.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SEPARATOR = ":"
SPELLINGS = "'package.module:function' or 'path/to/file.py:function'"
# Spec fields that may hold a reference, and the family sub-table keyed by their value.
REFERENCE_FIELDS = {"dataset": "dataset_kwargs", "model": "model_kwargs"}


def is_reference(name: str) -> bool:
    """Whether ``name`` is a plug-in reference rather than a registered name (a name has no ``:``)."""
    return isinstance(name, str) and SEPARATOR in name


def split_reference(reference: str, kind: str = "plug-in") -> tuple[str, str]:
    """``"pkg.mod:build"`` -> ``("pkg.mod", "build")``; a malformed reference is a one-line error."""
    module, _, function = reference.rpartition(SEPARATOR)
    if not module.strip() or not function.strip() or not all(part.isidentifier() for part in function.split(".")):
        raise ValueError(f"{kind} {reference!r} is not a plug-in reference: write {SPELLINGS}")
    return module.strip(), function.strip()


def is_file_module(module: str) -> bool:
    """Whether the module part of a reference names a file (``something.py``)."""
    return module.endswith(".py")


def anchored(reference: str, folder: Path) -> str:
    """``reference`` as written in a spec file of ``folder``, made independent of the current folder."""
    if not is_reference(reference):
        return reference
    module, function = split_reference(reference)
    if is_file_module(module):
        path = Path(module).expanduser()
        return f"{(path if path.is_absolute() else folder / path).resolve()}{SEPARATOR}{function}"
    beside = folder / f"{module}.py"
    if module.isidentifier() and beside.is_file():  # a module file next to the spec: that file
        return f"{beside.resolve()}{SEPARATOR}{function}"
    return reference


def anchor_references(data: dict[str, Any], folder: Path, keyed: bool) -> dict[str, Any]:
    """``data`` (a spec file's table) with the references of ``dataset`` and ``model`` anchored.

    :param keyed: a family: ``dataset`` / ``model`` may be a list of choices, and
        ``dataset_kwargs`` / ``model_kwargs`` are keyed by the dataset / model they belong to.
    """
    data = dict(data)
    for name, table in REFERENCE_FIELDS.items():
        value = data.get(name)
        if isinstance(value, str):
            data[name] = anchored(value, folder)
        elif keyed and isinstance(value, list):
            data[name] = [anchored(item, folder) if isinstance(item, str) else item for item in value]
        if keyed and isinstance(data.get(table), Mapping):
            data[table] = {anchored(key, folder): entry for key, entry in data[table].items()}
    return data
