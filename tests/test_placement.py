"""Fractional GPU placement: small trials share a device, large ones wait for whole devices."""

from __future__ import annotations

from autoresearch.domain.placement import GpuPool, Placement


def test_four_quarter_gpu_trials_share_one_four_slot_gpu_and_a_whole_gpu_trial_waits() -> None:
    pool = GpuPool(["0"], slots_per_gpu=4)
    quarters = [pool.try_place(0.25) for _ in range(4)]
    assert quarters == [Placement(("0",), 1)] * 4
    assert pool.try_place(0.25) is None
    assert pool.try_place(1.0) is None
    for placement in quarters[:3]:
        assert placement is not None
        pool.release(placement)
    assert pool.try_place(1.0) is None  # one quarter still runs
    assert quarters[3] is not None
    pool.release(quarters[3])
    assert pool.try_place(1.0) == Placement(("0",), 4)


def test_small_trials_pack_onto_the_fullest_device_so_whole_devices_stay_free() -> None:
    pool = GpuPool(["0", "1"], slots_per_gpu=4)
    first = pool.try_place(0.5)
    second = pool.try_place(0.25)
    assert first is not None and second is not None and first.devices == second.devices
    whole = pool.try_place(1.0)
    assert whole is not None and whole.devices != first.devices


def test_multi_gpu_trials_take_whole_devices() -> None:
    pool = GpuPool(["0", "1", "2"], slots_per_gpu=2)
    assert pool.try_place(2.0) == Placement(("0", "1"), 2)
    assert pool.try_place(2.0) is None
    assert not pool.fits_ever(4.0) and pool.fits_ever(3.0) and pool.fits_ever(0.1)
    assert pool.try_place(0.3) == Placement(("2",), 1)  # a third of a two-slot GPU rounds up to a slot
