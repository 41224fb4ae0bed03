"""Where a trial runs on the GPUs: fractional slots, so that small trials share a device.

Each device is cut into `slots_per_gpu` slots. A trial that needs a fraction f <= 1 of a GPU takes
ceil(f * slots_per_gpu) slots on one device; a trial that needs n > 1 GPUs takes n whole devices.
Small trials go to the fullest device they fit on, so whole devices stay free for large ones.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    devices: tuple[str, ...]  # what CUDA_VISIBLE_DEVICES lists for the trial
    slots: int  # taken on each of the devices


class GpuPool:
    """The GPUs of one machine and what is placed on them; safe to share between threads."""

    def __init__(self, devices: Sequence[str], slots_per_gpu: int = 1) -> None:
        if not devices or slots_per_gpu < 1:
            raise ValueError("a GPU pool needs at least one device and one slot per device")
        self.slots_per_gpu = slots_per_gpu
        self.free = dict.fromkeys(devices, slots_per_gpu)
        self._lock = threading.Condition()

    def fits_ever(self, need: float) -> bool:
        """Whether a trial needing `need` GPUs could run here at all, with nothing else placed."""
        return need <= 1 or math.ceil(need) <= len(self.free)

    def try_place(self, need: float) -> Placement | None:
        """Take room for a trial now, or None when it has to wait for a running one to finish."""
        with self._lock:  # re-entrant: `place` calls this while holding it
            if need > 1:
                whole = [d for d, free in self.free.items() if free == self.slots_per_gpu][: math.ceil(need)]
                if len(whole) < math.ceil(need):
                    return None
                placement = Placement(tuple(whole), self.slots_per_gpu)
            else:
                slots = max(1, math.ceil(need * self.slots_per_gpu - 1e-9))
                fitting = [d for d, free in self.free.items() if free >= slots]
                if not fitting:
                    return None
                placement = Placement((min(fitting, key=lambda d: self.free[d]),), slots)
            for device in placement.devices:
                self.free[device] -= placement.slots
            return placement

    def place(self, need: float) -> Placement:
        """Wait until there is room for the trial, then take it. The trial must fit here at all."""
        if not self.fits_ever(need):
            raise ValueError(f"a trial needing {need:g} GPUs never fits on {len(self.free)}")
        with self._lock:
            while (placement := self.try_place(need)) is None:
                self._lock.wait()
            return placement

    def release(self, placement: Placement) -> None:
        with self._lock:
            for device in placement.devices:
                self.free[device] += placement.slots
            self._lock.notify_all()
