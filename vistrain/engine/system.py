"""Background sampler of CPU/RAM (psutil) and GPU stats (NVML through nvidia-ml-py)."""

from __future__ import annotations

import os
import socket
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
    """Thread emitting a :class:`SystemSample` every *interval* seconds.

    Under DDP (*relay* given) ranks other than 0 post their samples to the job's store instead of
    emitting, and rank 0 emits one sample merging the latest of every rank: its ``gpus`` list holds
    every rank's GPU (tagged with ``rank`` and ``host``) and ``ranks`` one CPU/RSS row per rank.
    """

    def __init__(self, emit: Callable[[Event], None], interval: float = 2.0, nvml: NvmlReader | None = None,
                 relay=None, rank: int = 0, gpu_index: int | None = None):
        self.emit = emit
        self.interval = interval
        self.nvml = nvml if nvml is not None else NvmlReader()
        self.relay = relay if relay is not None and getattr(relay, "available", False) else None
        self.rank = rank
        self.gpu_index = gpu_index  # under DDP each rank reports only its own GPU
        self.host = socket.gethostname()
        self._latest: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vistrain-system", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start sampling."""
        psutil.cpu_percent(interval=None)  # prime the CPU counter
        self._thread.start()

    def _own(self, process: psutil.Process) -> SystemSample:
        sample = sample_system(process, self.nvml)
        if self.relay is not None:
            gpus = [g for g in sample.gpus if self.gpu_index is None or g.get("index") == self.gpu_index]
            sample.gpus = [{**g, "rank": self.rank, "host": self.host} for g in gpus]
        return sample

    def merge(self, own: SystemSample, others: list[dict]) -> SystemSample:
        """Rank 0's sample with the latest of every other rank folded in."""
        for data in others:
            self._latest[int(data.get("rank", -1))] = data
        rows = [{"rank": self.rank, "host": self.host, "cpu_percent": own.cpu_percent,
                 "ram_used_gb": own.ram_used_gb, "process_rss_gb": own.process_rss_gb}]
        gpus = list(own.gpus)
        for rank in sorted(self._latest):
            data = self._latest[rank]
            rows.append({k: data.get(k) for k in ("rank", "host", "cpu_percent", "ram_used_gb", "process_rss_gb")})
            gpus += data.get("gpus") or []
        own.gpus, own.ranks = gpus, rows
        return own

    def _tick(self, process: psutil.Process) -> bool:
        """One sample: emitted, or posted for rank 0 under DDP; False (and ``error`` set) when it failed."""
        try:
            sample = self._own(process)
            if self.relay is None:
                self.emit(sample)
            elif self.rank != 0:
                data = {k: v for k, v in sample.to_dict().items() if k not in ("schema", "kind")}
                self.relay.post({**data, "rank": self.rank, "host": self.host})
            else:
                self.emit(self.merge(sample, self.relay.collect()))
            return True
        except BaseException as exc:  # noqa: BLE001 - surfaced by the runner, never kills training
            self.error = exc
            return False

    def _run(self) -> None:
        process = psutil.Process(os.getpid())
        if self.relay is not None and self.rank != 0 and not self._tick(process):
            return  # other ranks report at once: rank 0's first sample can already show them
        while not self._stop.wait(self.interval):
            if not self._tick(process):
                return

    def stop(self) -> None:
        """Stop and join the thread; under DDP rank 0 emits one last sample with every rank's latest, so even a
        run shorter than the interval (or a sampler thread starved by a busy machine) shows all of them."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.relay is not None and self.rank == 0 and self.error is None and self._thread.ident is not None:
            self._tick(psutil.Process(os.getpid()))
