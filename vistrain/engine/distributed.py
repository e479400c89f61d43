"""Data-parallel training through PyTorch's own engine: ``torch.distributed`` started by ``torchrun``.

vistrain does not launch or coordinate processes itself. ``torchrun`` (or ``vistrain run --nproc N``,
which runs ``torch.distributed.run`` for the user) sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the
rendezvous; :func:`setup` joins the process group (gloo on the CPU, nccl on CUDA). Every helper
below is a cheap no-op in a single process, so the loop calls them unconditionally.
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from vistrain.engine.launchenv import env_local_rank, launched_by_torchrun
from vistrain.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, emits events and draws the dashboard."""
        return self.rank == 0


def is_distributed() -> bool:
    """Whether a process group with more than one rank is up."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def info() -> DistInfo:
    """This process's rank, world size, local rank and backend (rank 0 of 1 when not distributed)."""
    if not is_distributed():
        return DistInfo()
    return DistInfo(tdist.get_rank(), tdist.get_world_size(), env_local_rank(),
                    str(tdist.get_backend()))


def setup(device_name: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the process group torchrun described: nccl when CUDA is used, gloo otherwise.

    Returns the single-process :class:`DistInfo` when not launched by torchrun.
    """
    if not launched_by_torchrun():
        return DistInfo()
    if is_distributed():
        return info()
    from datetime import timedelta

    local_rank = env_local_rank()
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda:")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible",
                              hint="start at most one process per GPU (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return info()


def device_for(dinfo: DistInfo, device: torch.device) -> torch.device:
    """One GPU per local rank under DDP; the CPU stays the CPU."""
    if dinfo.world_size > 1 and device.type == "cuda":
        return torch.device("cuda", dinfo.local_rank)
    return device


def teardown(barrier: bool = True) -> None:
    """Leave the process group (after a barrier when all went well, so no rank exits mid-talk)."""
    if tdist.is_available() and tdist.is_initialized():
        try:
            if barrier and tdist.get_world_size() > 1:
                tdist.barrier()
        finally:
            # free DDP wrappers caught in reference cycles while the group is alive: freed during interpreter
            # shutdown instead, gloo's worker threads can abort the process (SIGABRT) after a clean run
            gc.collect()
            tdist.destroy_process_group()


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel`` around *model* under DDP (rank 0's weights are broadcast); else *model*."""
    if not is_distributed() or any(isinstance(m, torch.nn.parallel.DistributedDataParallel) for m in [model]):
        return model
    if not any(p.requires_grad for p in model.parameters()):
        return model
    ids = [device.index] if device.type == "cuda" else None
    # LeNet's 1-channel conv weights get gradients in another (equally valid) stride layout: harmless, noisy
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (evaluation and checkpoints use it directly)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _reduce(t: torch.Tensor, op) -> torch.Tensor:
    # gloo reduces CPU tensors only; nccl needs them on the GPU
    on_gpu = tdist.get_backend() == "nccl"
    work = t.detach().clone()
    if on_gpu and work.device.type != "cuda":
        work = work.cuda()
    elif not on_gpu and work.device.type != "cpu":
        work = work.cpu()
    tdist.all_reduce(work, op=op)
    return work.to(t.device)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar tensor over ranks (a NaN on any rank makes it NaN everywhere)."""
    if not is_distributed():
        return t
    return _reduce(t.float(), tdist.ReduceOp.SUM) / tdist.get_world_size()


def _sums_over_ranks(values, dtype: torch.dtype, cast) -> tuple:
    flat = [cast(v.item()) if torch.is_tensor(v) else cast(v) for v in values]
    if not is_distributed():
        return tuple(flat)
    return tuple(cast(x) for x in _reduce(torch.tensor(flat, dtype=dtype), tdist.ReduceOp.SUM).tolist())


def all_reduce_sum_floats(*values) -> tuple[float, ...]:
    """Sums over ranks of numbers or scalar tensors, as floats."""
    return _sums_over_ranks(values, torch.float64, float)


def all_reduce_sum_ints(*values) -> tuple[int, ...]:
    """Sums over ranks of counts (ints or integer tensors), exactly."""
    return _sums_over_ranks(values, torch.int64, int)


def all_reduce_sum_tensor(t: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of *t* over ranks (e.g. a confusion matrix); *t* itself without DDP."""
    if not is_distributed():
        return t
    return _reduce(t, tdist.ReduceOp.SUM)


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's *t* (same shape on each) stacked along the first dimension in rank order; *t* without DDP."""
    if not is_distributed():
        return t
    on_gpu = tdist.get_backend() == "nccl"
    work = t.detach().contiguous()
    work = work.cuda() if on_gpu and work.device.type != "cuda" else work.cpu() if not on_gpu else work
    out = [torch.empty_like(work) for _ in range(tdist.get_world_size())]
    tdist.all_gather(out, work)
    return torch.cat(out).to(t.device)


def all_reduce_max_int(value: int) -> int:
    """The largest of an int over ranks."""
    if not is_distributed():
        return int(value)
    return int(_reduce(torch.tensor([int(value)], dtype=torch.int64), tdist.ReduceOp.MAX).item())


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank becomes true on all, so the ranks stop and save at the same step."""
    if not is_distributed():
        return tuple(bool(f) for f in flags)
    out = _reduce(torch.tensor([int(bool(f)) for f in flags], dtype=torch.int64), tdist.ReduceOp.MAX)
    return tuple(bool(x) for x in out.tolist())


def broadcast_object(obj):
    """Rank 0's *obj* on every rank (e.g. the run folder's path)."""
    if not is_distributed():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list | None:
    """Every rank's *obj* as a list on rank 0 (None elsewhere); a collective: all ranks must call it."""
    if not is_distributed():
        return [obj]
    out: list | None = [None] * tdist.get_world_size() if tdist.get_rank() == 0 else None
    tdist.gather_object(obj, out, dst=0)
    return out


# --- system samples of every rank reach rank 0 ---------------------------------------------------


class SampleRelay:
    """Posts this rank's latest system sample to the job's key-value store; rank 0 reads them back.

    The store (the rendezvous' TCPStore) works outside the collectives, so the sampler thread
    never interleaves with the training step's all-reduces.
    """

    PREFIX = "vistrain/system/"

    def __init__(self, dinfo: DistInfo, store=None):
        self.dinfo = dinfo
        self.store = store if store is not None else _default_store()
        self._seen: dict[int, str] = {}

    @property
    def available(self) -> bool:
        """Whether a store was found (always false in one process)."""
        return self.store is not None and self.dinfo.world_size > 1

    def post(self, sample: dict) -> None:
        """Publish this rank's sample (ranks other than 0)."""
        if self.available:
            self.store.set(f"{self.PREFIX}{self.dinfo.rank}", json.dumps(sample))

    def collect(self) -> list[dict]:
        """The other ranks' samples that arrived since the last call (rank 0)."""
        if not self.available:
            return []
        out = []
        for rank in range(1, self.dinfo.world_size):
            key = f"{self.PREFIX}{rank}"
            try:
                if not self.store.check([key]):
                    continue
                raw = self.store.get(key).decode()
            except Exception:  # noqa: BLE001 - a rank that went away simply stops reporting
                continue
            if raw != self._seen.get(rank):
                self._seen[rank] = raw
                out.append(json.loads(raw))
        return out


def _default_store():
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store()
    except Exception:  # noqa: BLE001 - without it, only rank 0's own samples are shown
        return None


# --- vistrain run --nproc N ---------------------------------------------------------------------


def torchrun_args(nproc: int, argv: Sequence[str], nnodes: str | None = None) -> list[str]:
    """Arguments for ``torch.distributed.run`` starting ``python -m vistrain`` *argv* on *nproc* processes."""
    args = ["--nproc-per-node", str(nproc)]
    if nnodes is None:
        args.append("--standalone")
    else:
        args += ["--nnodes", nnodes]
    return args + ["-m", "vistrain", *argv]


# what torch.distributed.run changes in the process that runs it, and never puts back
_TORCHRUN_SIGNALS = ("SIGUSR1", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
_TORCHRUN_ENV = ("OMP_NUM_THREADS", "TORCHELASTIC_SIGNALS_TO_HANDLE")


def launch(nproc: int, argv: Sequence[str], preempted_code: int) -> int:
    """Run ``torch.distributed.run`` in this process for *nproc* local workers; returns an exit code.

    SIGUSR1 and SIGTERM are passed on to the workers as SIGUSR1 (each then finishes its step, rank 0
    saves, and all exit with *preempted_code*), which is returned; a failing worker's code is returned.
    The signal handler only records the signal: a thread sends it on, since a handler runs between two
    bytecodes of the main thread and must not wait for a lock that thread may hold. The signal
    handlers and environment variables torchrun changes are put back afterwards.
    """
    import os
    import signal
    import threading

    import psutil
    from torch.distributed import run as trun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    got: list[int] = []
    done = threading.Event()

    def record(signum, frame):
        got.append(signum)

    def forward() -> None:
        sent = 0
        while not done.wait(0.05):
            if sent == len(got):
                continue
            sent = len(got)
            for child in psutil.Process().children(recursive=True):
                try:
                    child.send_signal(signal.SIGUSR1)
                except psutil.Error:
                    pass

    handled = [getattr(signal, name) for name in _TORCHRUN_SIGNALS if hasattr(signal, name)]
    previous = {s: signal.getsignal(s) for s in handled}
    env = {k: os.environ.get(k) for k in _TORCHRUN_ENV}
    forwarder = threading.Thread(target=forward, name="vistrain-signal-forward", daemon=True)
    for s in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(s, record)
    forwarder.start()
    try:
        trun.run(trun.get_args_parser().parse_args(torchrun_args(nproc, argv)))
        return 0
    except SignalException:  # torchrun's own SIGTERM handler stopped the workers (with SIGTERM)
        return preempted_code
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        if got or all(c == preempted_code for c in codes):
            return preempted_code
        return next((c for c in codes if c not in (0, None) and c > 0), 1)
    finally:
        done.set()
        forwarder.join()
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
