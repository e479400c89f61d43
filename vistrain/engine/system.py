"""Background sampler of CPU/RAM (psutil) and GPU stats (NVML through nvidia-ml-py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import psutil

from vistrain.events import Event, SystemSample


class NvmlReader:
    """Reads per-GPU utilisation, memory, temperature and power; empty when NVML is absent."""

    def __init__(self, nvml=None):
        self._nvml = nvml
        self._handles: list = []
        try:
            if self._nvml is None:
                import pynvml as nvml_module  # provided by nvidia-ml-py

                self._nvml = nvml_module
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:  # noqa: BLE001 - no driver, no library: simply no GPU stats
            self._handles = []

    @property
    def available(self) -> bool:
        """Whether any GPU can be read."""
        return bool(self._handles)

    def read(self) -> list[dict]:
        """One dict per GPU: index, name, util %, memory used/total GB, temperature °C, power W."""
        out = []
        nv = self._nvml
        for i, h in enumerate(self._handles):
            try:
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                name = nv.nvmlDeviceGetName(h)
                name = name.decode() if isinstance(name, bytes) else str(name)
                try:
                    temp = float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
                except Exception:  # noqa: BLE001
                    temp = None
                try:
                    power = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
                except Exception:  # noqa: BLE001
                    power = None
                out.append({"index": i, "name": name, "util_percent": float(util.gpu),
                            "mem_used_gb": mem.used / 1e9, "mem_total_gb": mem.total / 1e9,
                            "temperature_c": temp, "power_w": power})
            except Exception:  # noqa: BLE001 - a GPU that stops answering is left out of this sample
                continue
        return out


def sample_system(process: psutil.Process | None = None, nvml: NvmlReader | None = None) -> SystemSample:
    """Take one sample of CPU %, RAM, this process's RSS and the GPUs."""
    process = process or psutil.Process(os.getpid())
    vm = psutil.virtual_memory()
    return SystemSample(
        cpu_percent=psutil.cpu_percent(interval=None), ram_used_gb=(vm.total - vm.available) / 1e9,
        ram_total_gb=vm.total / 1e9, process_rss_gb=process.memory_info().rss / 1e9,
        gpus=nvml.read() if nvml is not None else [],
    )


class SystemSampler:
    """Thread emitting a :class:`SystemSample` every *interval* seconds."""

    def __init__(self, emit: Callable[[Event], None], interval: float = 2.0, nvml: NvmlReader | None = None):
        self.emit = emit
        self.interval = interval
        self.nvml = nvml if nvml is not None else NvmlReader()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vistrain-system", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start sampling."""
        psutil.cpu_percent(interval=None)  # prime the CPU counter
        self._thread.start()

    def _run(self) -> None:
        process = psutil.Process(os.getpid())
        while not self._stop.wait(self.interval):
            try:
                self.emit(sample_system(process, self.nvml))
            except BaseException as exc:  # noqa: BLE001 - surfaced by the runner, never kills training
                self.error = exc
                return

    def stop(self) -> None:
        """Stop and join the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
