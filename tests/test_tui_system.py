"""System panel: the GPU branch with NVML faked, and the CPU branch with real psutil readings."""

from __future__ import annotations

import pytest

from vistrain.engine.system import NvmlReader, sample_system
from vistrain.tui.app import DashboardApp
from vistrain.tui.widgets.system import SystemPanel


class FakeNvml:
    """Just enough of pynvml for :class:`NvmlReader`: two GPUs, the second without power readings."""

    NVML_TEMPERATURE_GPU = 0

    class _Util:
        def __init__(self, gpu):
            self.gpu = gpu

    class _Mem:
        def __init__(self, used, total):
            self.used, self.total = used, total

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return self._Util([87, 12][h])

    def nvmlDeviceGetMemoryInfo(self, h):
        return self._Mem([12e9, 3e9][h], 80e9)

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100"

    def nvmlDeviceGetTemperature(self, h, kind):
        return [71, 40][h]

    def nvmlDeviceGetPowerUsage(self, h):
        if h == 1:
            raise RuntimeError("not supported")
        return 250_000


@pytest.mark.asyncio
async def test_gpu_branch_with_fake_nvml():
    sample = sample_system(nvml=NvmlReader(FakeNvml()))
    assert len(sample.gpus) == 2
    app = DashboardApp()
    async with app.run_test(size=(120, 30)) as pilot:
        app.feed([sample])
        await pilot.pause()
        text = app.query_one(SystemPanel).render().plain
    assert "GPU0" in text and "87%" in text and "71°C" in text and "250W" in text and "12.0/80G" in text
    assert "GPU1" in text and "12%" in text and "40°C" in text and "3.0/80G" in text
    assert "CPU" not in text


@pytest.mark.asyncio
async def test_cpu_branch_with_real_psutil():
    sample = sample_system()  # no NVML reader: the CPU view
    assert sample.gpus == [] and sample.ram_total_gb > 0 and sample.process_rss_gb > 0
    app = DashboardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        assert "waiting for the first sample" in app.query_one(SystemPanel).render().plain
        app.feed([sample])
        await pilot.pause()
        text = app.query_one(SystemPanel).render().plain
    assert f"{sample.cpu_percent:3.0f}%" in text
    assert f"{sample.ram_used_gb:.1f}/{sample.ram_total_gb:.0f}G" in text
    assert f"RSS {sample.process_rss_gb:.2f} GB" in text


@pytest.mark.asyncio
async def test_ddp_sample_shows_one_row_per_rank():
    """Rank 0's merged sample (see SystemSampler.merge): every rank's CPU/RSS row and rank-tagged GPUs."""
    from vistrain.engine.system import SystemSampler

    own = sample_system()
    merger = SystemSampler(lambda e: None, relay=None)
    others = [{"rank": 1, "host": "node-b", "cpu_percent": 55.0, "ram_used_gb": 3.0, "process_rss_gb": 1.25,
               "gpus": []}]
    cpu_sample = merger.merge(own, others)
    gpu_sample = sample_system(nvml=NvmlReader(FakeNvml()))
    gpu_sample.gpus = [{**gpu_sample.gpus[0], "rank": 0}, {**gpu_sample.gpus[1], "rank": 1, "index": 0}]
    app = DashboardApp()
    async with app.run_test(size=(120, 30)) as pilot:
        app.feed([cpu_sample])
        await pilot.pause()
        cpu_text = app.query_one(SystemPanel).render().plain
        app.feed([gpu_sample])
        await pilot.pause()
        gpu_text = app.query_one(SystemPanel).render().plain
    assert "r0 " in cpu_text and "r1 " in cpu_text and " 55%" in cpu_text and "1.25G RSS" in cpu_text
    assert "node-b" in cpu_text and "(this process)" not in cpu_text
    assert "r0:GPU0" in gpu_text and "r1:GPU0" in gpu_text and "87%" in gpu_text and "12%" in gpu_text
