"""The public API is documented (what the reference docs are generated from): every public
class, function, method and property has a docstring, and every parameter of each is named
in it (as ``name``), a class's in its own docstring or its ``__init__``'s."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

#: The modules apps and tools import from, each with the names it makes public.
PUBLIC_MODULES = (
    "flask_postmark_auth",
    "flask_postmark_auth.testing",
    "flask_postmark_auth.store",
    "flask_postmark_auth.tasks",
    "flask_postmark_auth.errors",
    "flask_postmark_auth.signals",
)


def public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:  # every name the module defines
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        ]
    return [name for name in names if not name.startswith("__")]


def public_objects() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)) or id(value) in seen:
                continue
            seen.add(id(value))
            yield f"{module_name}.{name}", value
            if inspect.isclass(value):
                yield from class_members(f"{module_name}.{name}", value)


def class_members(where: str, cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties a class of the package defines itself."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            yield f"{where}.{name}", value


def parameters(obj: Any) -> list[str]:
    target: Any = obj.fget if isinstance(obj, property) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [
        name
        for name, parameter in signature.parameters.items()
        if name not in ("self", "cls")
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def problems(where: str, obj: Any) -> Iterator[str]:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and obj.__init__ is not object.__init__:
        init_doc = inspect.getdoc(obj.__init__) or ""
        if init_doc == inspect.getdoc(object.__init__):
            init_doc = ""
        doc = f"{doc}\n{init_doc}"
        if obj.__module__.startswith("flask_postmark_auth") and not obj.__doc__:
            yield f"{where}: no docstring"
    elif not doc.strip():
        yield f"{where}: no docstring"
        return
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        names = parameters(obj)
    elif inspect.isclass(obj):
        names = [] if "__init__" not in vars(obj) else parameters(obj)
    else:
        names = parameters(obj)
    for name in names:
        if f"``{name}``" not in doc:
            yield f"{where}: parameter {name!r} is not described"


def test_every_public_name_and_parameter_is_documented() -> None:
    found = [problem for where, obj in public_objects() for problem in problems(where, obj)]
    assert found == []


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_module_says_what_it_is_for(module: str) -> None:
    assert (importlib.import_module(module).__doc__ or "").strip()
