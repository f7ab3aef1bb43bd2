"""Keep instrumented models exactly as they were: train/eval flags, requires_grad, .grad, hooks."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator

from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock every instrument takes before touching ``model`` (cached models are shared by sessions)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def preserved_state(model: nn.Module, *, train: bool | None = None) -> Iterator[nn.Module]:
    """Hold the model's lock; optionally switch train/eval; restore flags, requires_grad and .grad after.

    Restoring happens in ``finally``, so an exception inside leaves the model as it was.
    """
    with model_lock(model):
        modes = {module: module.training for module in model.modules()}
        params = list(model.parameters())
        requires = [p.requires_grad for p in params]
        grads = [p.grad for p in params]
        try:
            if train is not None:
                model.train(train)
            yield model
        finally:
            for module, mode in modes.items():
                module.training = mode
            for p, req, grad in zip(params, requires, grads, strict=True):
                p.requires_grad_(req)
                p.grad = grad


def count_hooks(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks on every module of ``model`` (0 when nothing leaked)."""
    total = 0
    for module in model.modules():
        total += len(module._forward_hooks) + len(module._forward_pre_hooks)
        total += len(module._backward_hooks) + len(getattr(module, "_backward_pre_hooks", {}))
    return total
