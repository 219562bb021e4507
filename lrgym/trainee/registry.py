"""One registry per kind of trainee part (datasets, models): names -> the callables that make them.

A name resolves, in order, to

1. an entry of the registry's table: lrgym's own (``DATASETS`` in :mod:`lrgym.trainee.data`,
   ``MODELS`` in :mod:`lrgym.trainee.models`) and those added with :meth:`Registry.register`
   (``lrgym.register_dataset`` / ``lrgym.register_model``);
2. an entry point of an installed package in the registry's group (``lrgym.datasets``,
   ``lrgym.models``), e.g. in that package's ``pyproject.toml``::

       [project.entry-points."lrgym.datasets"]
       my-digits = "my_package.data:load"

   (lrgym's own names win over an entry point of the same name);
3. a plug-in reference ``module:function`` or ``file.py:function`` (:mod:`lrgym.tasks.plugins`),
   imported when first asked for.

Names registered in Python live in the process that registered them; lrgym's local
process pool hands them to its workers (:func:`registrations`, :func:`restore_registrations`),
so they must be module-level functions there. Entry points and references resolve in any process.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lrgym.tasks.names import unknown_name_error
from lrgym.tasks.plugins import SPELLINGS, is_file_module, is_reference, split_reference


class Registry:
    """Names -> callables of one kind, with entry points and plug-in references.

    :param kind: ``"dataset"`` or ``"model"`` (the word in messages).
    :param group: the entry-point group installed packages add to.
    :param entries: the table of lrgym's own entries; registrations are added to it.
    """

    def __init__(self, kind: str, group: str, entries: dict[str, Callable[..., Any]]) -> None:
        self.kind, self.group, self.entries = kind, group, entries
        self.builtin = frozenset(entries)
        self._entry_points: dict[str, Callable[..., Any]] = {}  # loaded so far (a reference is imported
        # each time it is asked for: Python keeps the module, and an edited file is not shadowed by a stale copy)

    def register(self, name: str, function: Callable[..., Any], replace: bool = False) -> None:
        """Add ``function`` under ``name``; an existing name needs ``replace=True``."""
        if not isinstance(name, str) or not name.strip() or is_reference(name) or name != name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string without ':' or surrounding "
                             f"spaces (':' marks a plug-in reference), got {name!r}")
        if not callable(function):
            raise ValueError(f"register_{self.kind}({name!r}, ...) needs a callable, got {type(function).__name__}")
        if name in self.entries and not replace:
            origin = "lrgym's own" if name in self.builtin else "already registered"
            raise ValueError(f"{self.kind} {name!r} is {origin}: choose another name, or pass replace=True")
        self.entries[name] = function

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is one of lrgym's own entries (not replaced)."""
        return name in self.builtin

    def names(self) -> list[str]:
        """Every registered name and installed entry point (references are not listed)."""
        return sorted(set(self.entries) | {point.name for point in entry_points(group=self.group)})

    def resolve(self, name: str) -> Callable[..., Any]:
        """The callable ``name`` stands for (see the module docstring for the order)."""
        if name in self.entries:
            return self.entries[name]
        if is_reference(name):
            return import_reference(name, self.kind)
        if name not in self._entry_points:
            self._entry_points[name] = self._entry_point(name)
        return self._entry_points[name]

    def call(self, name: str, *args: Any, passing: tuple[type[Exception], ...] = (), **kwargs: Any) -> Any:
        """``resolve(name)(*args, **kwargs)``; a plug-in's own failure (other than ``passing``)
        becomes one ``ValueError`` line naming it, its cause chained. lrgym's own raise as they are."""
        function = self.resolve(name)
        if self.is_builtin(name):
            return function(*args, **kwargs)
        try:
            return function(*args, **kwargs)
        except passing:
            raise
        except Exception as error:  # the user's code: say whose it is
            raise ValueError(f"{self.kind} {name!r} failed: {type(error).__name__}: {error}") from error

    def _entry_point(self, name: str) -> Callable[..., Any]:
        points = [point for point in entry_points(group=self.group) if point.name == name]
        if not points:
            error = unknown_name_error(self.kind, name, self.names())
            raise ValueError(f"{error}; or a plug-in {SPELLINGS}")
        point = points[0]
        try:
            function = point.load()
        except Exception as error:  # any failure of the package's own import: one line, with its origin
            raise ValueError(f"{self.kind} {name!r} (entry point {point.value!r} in group {self.group!r}) "
                             f"cannot be loaded: {type(error).__name__}: {error}") from error
        return _checked_callable(function, self.kind, name)

    def registrations(self) -> dict[str, Callable[..., Any]]:
        """The entries added in this process that another process can receive (picklable by reference)."""
        added = {}
        for name, function in self.entries.items():
            if name in self.builtin:
                continue
            try:
                pickle.dumps(function)
            except Exception:  # a lambda or a local function: usable only in this process
                continue
            added[name] = function
        return added


def import_reference(reference: str, kind: str = "plug-in") -> Callable[..., Any]:
    """Import the callable of a plug-in reference (``module:function`` or ``file.py:function``).

    :raises ValueError: one line naming the reference and what went wrong.
    """
    module_name, function_name = split_reference(reference, kind)
    where = f"{kind} {reference!r}"
    if is_file_module(module_name):
        module = _import_file(Path(module_name).expanduser(), where)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is None or not module_name.startswith(error.name):
                raise ValueError(f"{where}: importing {module_name!r} failed: ModuleNotFoundError: {error}") from error
            raise ValueError(
                f"{where}: cannot import module {module_name!r} ({error}); install it, put its folder on "
                f"PYTHONPATH, or write the file's path: '{module_name.replace('.', '/')}.py:{function_name}'"
            ) from error
        except Exception as error:
            raise ValueError(f"{where}: importing {module_name!r} failed: {type(error).__name__}: {error}") from error
    function: Any = module
    for part in function_name.split("."):
        if not hasattr(function, part):
            raise ValueError(f"{where}: {module_name!r} has no {function_name!r}")
        function = getattr(function, part)
    return _checked_callable(function, kind, reference)


def _import_file(path: Path, where: str) -> Any:
    """Import ``path`` by its name, its folder joining ``sys.path`` as a script's folder does."""
    if not path.is_file():
        raise ValueError(f"{where}: no file {path}")
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(path.stem)
    except Exception as error:
        raise ValueError(f"{where}: importing {path} failed: {type(error).__name__}: {error}") from error
    loaded_from = getattr(module, "__file__", None)
    if loaded_from is None or Path(loaded_from).resolve() != path:
        raise ValueError(f"{where}: a module named {path.stem!r} is already imported from {loaded_from}; "
                         f"rename {path.name}")
    return module


def _checked_callable(function: Any, kind: str, name: str) -> Callable[..., Any]:
    if not callable(function):
        raise ValueError(f"{kind} {name!r} is not callable (got {type(function).__name__})")
    return function


def keyword_names(function: Callable[..., Any], skip: int = 0) -> list[str] | None:
    """The keyword parameters ``function`` takes after its first ``skip`` ones; ``None`` when it
    takes any keyword (``**kwargs``) or its signature cannot be read."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return [parameter.name for parameter in parameters[skip:]
            if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def unknown_keywords_error(
    kind: str, name: str, function: Callable[..., Any], given: dict[str, Any], skip: int = 0,
    hidden: tuple[str, ...] = (),
) -> ValueError | None:
    """The error for keywords in ``given`` that ``function`` does not take (``None``: all taken).

    :param hidden: parameters lrgym fills itself, which a spec may not set.
    """
    accepted = keyword_names(function, skip)
    if accepted is None and not set(given) & set(hidden):
        return None
    valid = [word for word in (accepted or []) if word not in hidden]
    unknown = sorted(set(given) - set(valid)) if accepted is not None else sorted(set(given) & set(hidden))
    if not unknown:
        return None
    return ValueError(f"{kind} {name!r} takes no keyword(s) {unknown}; valid: {', '.join(valid) or 'none'}")


REGISTRIES: dict[str, Registry] = {}  # kind -> its registry, filled by lrgym.trainee.data and .models


def registrations() -> dict[str, dict[str, Callable[..., Any]]]:
    """What this process registered, by kind: for :func:`restore_registrations` in a worker."""
    return {kind: registry.registrations() for kind, registry in REGISTRIES.items()}


def restore_registrations(registered: dict[str, dict[str, Callable[..., Any]]]) -> None:
    """Register in this process (a worker) what :func:`registrations` returned in its parent."""
    for kind, entries in registered.items():
        for name, function in entries.items():
            REGISTRIES[kind].register(name, function, replace=True)
