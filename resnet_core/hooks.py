"""The one tap primitive: every instrument attaches its hooks here, and only this module calls ``register_*hook``.

::

    with taps(model, train=False) as t:          # the model's lock, train/eval switched for the duration
        kept = t.record("layer2.0", what="input")  # detached by default; detach=False to differentiate
        t.forward("layer3.0.tap_sum", my_hook)     # any forward hook; its return value replaces the output
        model(x)
    kept["layer2.0"]                               # hooks are gone here, the model is as it was

Rules kept in one place:

* hooks go on and come off under the model's lock (``model_lock``); a model shared by several app sessions is
  never seen half-instrumented;
* every handle is removed in ``finally`` (also when the forward raises), before the train/eval flags,
  ``requires_grad``, ``.grad`` and, on request, batch-norm running statistics are put back;
* gradients for analysis come from ``torch.autograd.grad`` or tensor hooks on recorded outputs
  (``Taps.output_grad``), never from module backward hooks;
* a recorded tensor is detached unless the caller differentiates with respect to it, and cloned on request
  (when something later writes into it in place).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()

Layer = str | nn.Module
ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]
ForwardPreHook = Callable[[nn.Module, tuple[Any, ...]], Any]
RECORD_WHAT = ("output", "input")


class TapError(ValueError):
    """A tap asked for a layer the model does not have; ``str(error)`` is one sentence."""


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock every instrument takes before touching ``model`` (cached models are shared by sessions)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def preserved_state(model: nn.Module, *, train: bool | None = None, grads: bool | None = None,
                    restore_buffers: bool = False) -> Iterator[nn.Module]:
    """Hold the model's lock; optionally switch train/eval; restore flags, requires_grad and .grad after.

    ``grads`` sets ``requires_grad`` of every parameter for the duration. ``restore_buffers``: when some module
    runs in train mode, batch-norm would update its running statistics, so buffers are snapshotted and written
    back. Restoring happens in ``finally``, so an exception inside leaves the model as it was.
    """
    with model_lock(model):
        modes = [(module, module.training) for module in model.modules()]
        params = list(model.parameters())
        saved = [(p, p.requires_grad, p.grad) for p in params]
        runs_training = train if train is not None else any(mode for _, mode in modes)
        buffers = [(b, b.detach().clone()) for b in model.buffers()] if restore_buffers and runs_training else []
        try:
            if train is not None and type(model).train is not nn.Module.train:
                model.train(train)  # a model with its own train() (e.g. frozen batch norm) gets its way
            elif train is not None:
                for module, mode in modes:  # what Module.train does, without a second walk of the tree
                    if mode != train:
                        module.training = train
            if grads is not None:
                for p in params:
                    p.requires_grad_(grads)
            yield model
        finally:
            # Restored field by field, and only where it changed: an instrument call on a large net pays
            # microseconds here, not a millisecond.
            for module, mode in modes:
                if module.training != mode:
                    module.training = mode
            for p, requires, grad in saved:
                if p.requires_grad != requires:
                    p.requires_grad_(requires)
                if p.grad is not grad:
                    p.grad = grad
            with torch.no_grad():
                for buffer, copy in buffers:
                    buffer.copy_(copy)


def count_hooks(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks on every module of ``model`` (0 when nothing leaked)."""
    total = 0
    for module in model.modules():
        total += len(module._forward_hooks) + len(module._forward_pre_hooks)
        total += len(module._backward_hooks) + len(getattr(module, "_backward_pre_hooks", {}))
    return total


class Recording(dict):
    """Layer name -> recorded tensor, in the order the taps first fired (forward order)."""

    @property
    def order(self) -> list[str]:
        return list(self)


class Taps:
    """The taps attached to one model inside ``taps(...)``; every handle is removed by ``remove()``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._handles: list[Any] = []

    def module(self, layer: Layer) -> nn.Module:
        """The module for a qualified name (or the module itself)."""
        if isinstance(layer, nn.Module):
            return layer
        try:
            module = self.model.get_submodule(layer) if layer else None
        except AttributeError:
            module = None
        if module is None:
            raise TapError(f"This model has no layer named {layer!r}; use a qualified name such as 'layer1.0'.")
        return module

    def forward(self, layer: Layer, hook: ForwardHook) -> None:
        """A forward hook ``hook(module, args, output)``; a non-None return value replaces the output."""
        self._handles.append(self.module(layer).register_forward_hook(hook))

    def forward_pre(self, layer: Layer, hook: ForwardPreHook) -> None:
        """A forward-pre hook ``hook(module, args)``; a non-None return value replaces the arguments."""
        self._handles.append(self.module(layer).register_forward_pre_hook(hook))

    def record(self, layers: Layer | list[Layer] | tuple[Layer, ...], *, what: str = "output",
               detach: bool = True, clone: bool = False) -> Recording:
        """Record each layer's output (or first input, ``what="input"``) the first time it runs.

        Keys are the layer names (for a module given directly: its qualified name). ``detach=False`` keeps the
        tensor in the graph, for ``torch.autograd.grad`` with respect to it; ``clone=True`` copies it (needed
        only when something later writes into it in place). Non-tensor outputs are not recorded.
        """
        if what not in RECORD_WHAT:
            raise TapError(f"what must be one of {RECORD_WHAT}, got {what!r}.")
        kept = Recording()
        names = {id(m): n for n, m in self.model.named_modules()}
        for layer in layers if isinstance(layers, (list, tuple)) else [layers]:
            module = self.module(layer)
            name = layer if isinstance(layer, str) else names.get(id(module), type(module).__name__)

            def keep(value: Any, name: str = name) -> None:
                if isinstance(value, torch.Tensor) and name not in kept:
                    value = value.detach() if detach else value
                    kept[name] = value.clone() if clone else value

            if what == "output":
                self.forward(module, lambda _m, _args, out, keep=keep: keep(out))
            else:
                self.forward_pre(module, lambda _m, args, keep=keep: keep(args[0] if args else None))
        return kept

    def output_grad(self, layer: Layer, hook: Callable[[torch.Tensor], Any]) -> None:
        """A tensor hook on the layer's output: ``hook(grad)`` sees the gradient arriving there during a
        backward pass (a non-None return value replaces it). Removed with the other taps."""

        def attach(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                self._handles.append(output.register_hook(hook))

        self.forward(layer, attach)

    def remove(self) -> None:
        """Take every tap off (idempotent)."""
        while self._handles:
            self._handles.pop().remove()


@contextlib.contextmanager
def taps(model: nn.Module, *, train: bool | None = None, grads: bool | None = None,
         restore_buffers: bool = False, hold: bool = True) -> Iterator[Taps]:
    """Attach taps to ``model`` for the duration of the ``with`` block; see the module docstring.

    ``train``, ``grads`` and ``restore_buffers`` are those of ``preserved_state``. ``hold=False`` skips the lock
    and the state snapshot, for a caller that already holds both; the taps still come off in ``finally``.
    """
    with preserved_state(model, train=train, grads=grads, restore_buffers=restore_buffers) if hold \
            else contextlib.nullcontext(model):
        tapped = Taps(model)
        try:
            yield tapped
        finally:
            tapped.remove()
