"""An approach from the user's own package, named in the config as `module:Class`.

The registries (runtime/policies/*/registry.py) hold the approaches this repository ships; a
class anywhere on the Python path (an installed package, or PYTHONPATH) can be run instead by
naming it in `approach.plugin`. It is imported where the approach runs: by the orchestrator
for the virtual clock and the pre-run check, and by the controller role on its host.
"""

from __future__ import annotations

import importlib
from typing import Any

from runtime.exceptions import ConfigError


def load_class(spec: str, base: type[Any], key: str) -> type[Any]:
    """The class `spec` ("package.module:Class") names, which must subclass `base`; a ConfigError
    naming `key` otherwise."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{key}: {spec!r} is not module:Class (e.g. mylab.approaches:FixedThreshold)")
    try:
        found = importlib.import_module(module)
    except Exception as exc:  # an ImportError, or an error raised by the module's own code
        raise ConfigError(
            f"{key}: cannot import {module!r} ({type(exc).__name__}: {exc}); "
            "install the package, or put it on PYTHONPATH, on every host that runs the controller"
        ) from None
    cls = getattr(found, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        what = "has no attribute" if cls is None else "is not a subclass of"
        target = f"{base.__module__}.{base.__qualname__}"
        raise ConfigError(f"{key}: {spec} {what} {attr if cls is None else target}")
    return cls
