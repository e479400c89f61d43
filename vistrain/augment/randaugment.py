"""RandAugment (Cubuk et al. 2019): N ops drawn uniformly per image from a pool, at one magnitude M.

The default pool is every registered op with ``randaugment=True`` meta: the paper's 14
built-ins plus any plugin op that opts in. Pool ops are built as ``factory(m=M)``; with
magnitude noise (``mstd``) M is redrawn per op and rounded to one of the 31 integer bins, so
each op is built at most 31 times and cached; ``mstd`` above 100 draws it uniformly from [0, M] instead
(timm's convention; FixMatch's RandAugment is ``m30-mstd101``). When every op of the pool has a tensor form, its batch
form (:mod:`vistrain.augment.tensor_randaugment`) augments in-memory data on the training device.

Trust: a third-party op of the default pool that cannot be built, or raises on an image, is left
out of the pool for the rest of the run with a warning naming its plugin; an op the user named
in ``ops`` and a built-in op still fail loudly.
"""

from __future__ import annotations

import sys

import numpy as np

from vistrain.augment.ops import MAX_MAGNITUDE, AugmentFn, check_range
from vistrain.errors import ConfigError, VistrainError

UNIFORM_MSTD = 100.0  # mstd above this: magnitudes uniform in [0, m], as timm reads mstd > 100

PAPER_OPS = ("identity", "autocontrast", "equalize", "rotate", "solarize", "color", "posterize", "contrast",
             "brightness", "sharpness", "shear-x", "shear-y", "translate-x", "translate-y")


def default_pool() -> list[str]:
    """Names of every registered op that joins RandAugment's pool."""
    from vistrain.plugins import registry

    return [e.name for e in registry("augmentation") if e.meta.get("randaugment")]


class RandAugment:
    """Apply ``n`` ops chosen uniformly (with replacement) from the pool at magnitude ``m`` (0..30)."""

    name = "rand"

    def __init__(self, n: int = 2, m: float = 9.0, mstd: float = 0.0, ops: list[str] | str | None = None):
        check_range(self.name, "n", n, 0, 16)
        check_range(self.name, "m", m, 0.0, MAX_MAGNITUDE)
        if not (0.0 <= float(mstd) <= MAX_MAGNITUDE or float(mstd) > UNIFORM_MSTD):
            raise ConfigError(f"augmentation {self.name!r}: parameter mstd={mstd} is outside [0, {MAX_MAGNITUDE:g}] "
                              f"(Gaussian noise) and not above {UNIFORM_MSTD:g} (uniform in [0, m])")
        self.n, self.m, self.mstd = int(n), float(m), float(mstd)
        if isinstance(ops, str):
            ops = [o for o in ops.replace("+", ",").split(",") if o]
        chosen = bool(ops)
        self.ops = list(ops) if ops else default_pool()
        from vistrain.plugins import is_builtin, registry

        # the registry's own lookup (unknown names suggest the closest), not the pipeline module's: the tensor
        # ops import this module, and the pipeline imports them
        entries = [registry("augmentation").entry(name) for name in self.ops]
        self._plugins = [e.plugin for e in entries]
        self._factories = [e.load() for e in entries]
        self._cache: dict[tuple[int, float], AugmentFn] = {}
        self._disabled: set[int] = set()
        for i in range(len(self.ops)):  # build now so a bad pool op fails at config time, not mid-epoch
            try:
                self.pool_op(i, self.probe_magnitude)
            except ConfigError as exc:
                if chosen or is_builtin(self._plugins[i]):
                    raise
                self._disable(i, str(exc))  # a third-party op the user did not pick must not stop the run
        if len(self._disabled) == len(self.ops):
            raise ConfigError("augmentation 'rand': the op pool is empty", hint="register ops with randaugment=True or pass ops")

    @property
    def probe_magnitude(self) -> float:
        """The magnitude each pool op is first built at, to check it (and its tensor form): M, or M's bin with noise."""
        return self.m if not self.mstd else float(round(self.m))

    def pool_op(self, i: int, magnitude: float) -> AugmentFn:
        """The pool's op *i* built at *magnitude* (built once per magnitude bin, then cached)."""
        key = (i, magnitude)
        op = self._cache.get(key)
        if op is None:
            try:
                op = self._factories[i](m=magnitude)
            except VistrainError:
                raise
            except Exception as exc:  # noqa: BLE001 - a plugin op that cannot take m is a config problem
                raise ConfigError(f"augmentation {self.ops[i]!r} cannot join RandAugment's pool: "
                                  f"factory(m={magnitude:g}) raised {type(exc).__name__}: {exc}") from None
            self._cache[key] = op
        return op

    def magnitudes(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Magnitudes for *shape* op applications: M; or, with ``mstd``, M plus Gaussian noise (up to 30) or uniform
        in [0, M] (above 100), rounded to one of the 31 bins. The per-image and the batch form both draw here."""
        if not self.mstd:
            return np.full(shape, self.m)
        if self.mstd > UNIFORM_MSTD:
            drawn = rng.uniform(0.0, self.m, shape)
        else:
            drawn = self.m + rng.normal(0.0, self.mstd, shape)
        return np.clip(np.round(drawn), 0.0, MAX_MAGNITUDE)

    def active(self) -> list[int]:
        """Indices of the pool's ops that have not been left out."""
        return [i for i in range(len(self.ops)) if i not in self._disabled]

    def traced(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        """Augment and also return the names of the ops applied (the preview's captions)."""
        names = []
        for i in rng.integers(0, len(self.ops), self.n):
            i = int(i)
            mag = float(self.magnitudes(rng))
            if i in self._disabled:
                continue  # a draw of a disabled op leaves the image as it is, keeping the other draws as they were
            try:
                img = self.pool_op(i, mag)(img, rng)
            except Exception as exc:
                from vistrain.plugins import is_builtin

                if is_builtin(self._plugins[i]):
                    raise
                self._disable(i, f"augmentation {self.ops[i]!r} raised {type(exc).__name__}: {exc}")
                continue
            names.append(self.ops[i])
        return img, names

    def _disable(self, i: int, reason: str) -> None:
        """Leave a third-party op out of the pool for the rest of the run, saying which plugin it came from."""
        self._disabled.add(i)
        print(f"warning: {reason}; plugin {self._plugins[i]!r}'s op is left out of RandAugment's pool for this run",
              file=sys.stderr)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.traced(img, rng)[0]

    def __repr__(self) -> str:
        return f"RandAugment(n={self.n}, m={self.m:g}, mstd={self.mstd:g}, ops={len(self.ops) - len(self._disabled)})"
