"""SIGINT/SIGTERM as a request to stop: the run finishes its current step, saves a checkpoint
and ends with status "stopped", so Ctrl-C or a scheduler's kill loses at most one step.

A second SIGINT while a stop is pending raises KeyboardInterrupt (stop now, no checkpoint).
Handlers can only be installed from the main thread; elsewhere (a run started in a thread)
the signals keep their old behaviour and `requested` stays False.
"""
from __future__ import annotations

import signal
import threading
from typing import Any


class StopRequest:
    """`with StopRequest() as stop:` installs the handlers and restores the previous ones on exit."""

    def __init__(self) -> None:
        self.signal: str | None = None   # name of the first stop signal received
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _ask_stop(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def agreed(self, accelerator) -> bool:
        """Whether any process was asked to stop; every rank must stop at the same step."""
        flag = self.requested
        if accelerator.num_processes > 1:
            import torch

            t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
            flag = bool(accelerator.reduce(t, reduction="max").item() > 0)
        return flag
