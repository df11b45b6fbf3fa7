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
