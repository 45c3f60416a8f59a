"""The model families the trainer trains, one module per kind of denoiser (unet.py: SD 1.x/2.x,
SDXL; flow.py: SD 3.5, Flux.1); importing this package registers them all in
`trainer.families.base.FAMILIES`, where the interface they implement and the lookups live.
"""
from __future__ import annotations

from . import base, flow, unet  # noqa: F401  (they register)

base.check_registry()
