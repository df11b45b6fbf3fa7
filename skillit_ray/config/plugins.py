"""Plugins: the classes that a later stage keeps in a package of its own, found without listing them.

Role in the flow: config (the option-sections mechanism of `loading.py`) -> **plugins** -> the
registries of skills (generator families), data (sources), mixture (strategies) and benchmarks. A
registry asks for every subclass of its base class defined in the modules of its package, so adding
one is adding a module there; nothing here imports those stages (the registry passes its package).
"""

from __future__ import annotations

import importlib
import pkgutil
import types
from collections.abc import Callable, Iterable


def subclasses_in(package: types.ModuleType, base: type) -> list[type]:
    """Every subclass of `base` (at any depth) defined in a module of `package`, in module then definition order.

    Importing the package's modules is what defines them; each module is imported once (Python caches it).
    """
    prefix = package.__name__ + "."
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda item: item.name):
        importlib.import_module(prefix + module.name)
    found, pending = [], list(base.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if cls.__module__.startswith(prefix):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def registry(package: types.ModuleType, base: type, names: Callable[[type], Iterable[str]]) -> dict[str, type]:
    """Name -> class for every subclass of `base` in `package`, each registered under `names(cls)` (none: a base
    class that is not itself registered), in name order; a name registered by two classes is our bug."""
    found: dict[str, type] = {}
    for cls in subclasses_in(package, base):
        for name in names(cls):
            if name in found and found[name] is not cls:
                raise TypeError(f"{name!r} is registered twice in {package.__name__}: {found[name]} and {cls}")
            found[name] = cls
    return dict(sorted(found.items()))


def chosen(registered: dict[str, type], key: str, name: str) -> type:
    """The class a config key names; the error names the key and lists every valid name."""
    if name not in registered:
        raise ValueError(f"{key}={name!r} is not valid; choose one of {', '.join(registered)}")
    return registered[name]
