"""The fine-tuning methods, one file each (lora.py, dreambooth.py, dreambooth_lora.py,
textual_inversion.py, full.py); importing this package registers them all in
`trainer.methods.registry.METHODS`, where the interface they implement and the lookups live.
"""
from __future__ import annotations

from ..vocabulary import METHOD_NAMES
from . import dreambooth, dreambooth_lora, full, lora, registry, textual_inversion  # noqa: F401  (they register)

if set(registry.METHODS) != set(METHOD_NAMES):  # the vocabulary's list (the config's choices) and the registry agree
    raise ImportError(f"trainer.methods registers {sorted(registry.METHODS)} "
                      f"but trainer.vocabulary lists {sorted(METHOD_NAMES)}")
