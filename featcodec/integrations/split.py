"""Split inference: cut a model at a named layer, encode the activation on one side, move
bytes, decode and finish on the other.

:func:`cut` turns a ``torch.nn.Module`` into ``head`` and ``tail`` modules with
``torch.fx``: ``head(*inputs)`` runs up to and including the submodule named ``at`` and
returns its output; ``tail(activation)`` runs the rest and returns what the model returns.
The cut is checked: if anything besides that one activation flows from the head to the
tail (a skip connection around the cut, a model input used again later), :func:`cut`
refuses and names what crosses, because then the one activation is not enough.

:class:`SplitModel` wraps the two halves with featcodec in between::

    split = SplitModel(model, "features.13", bits=8)
    split.calibrate(sample_images)          # fit the transform on head activations
    blob = split.edge(image)                # device side: bytes to send
    logits = split.cloud(blob)              # server side: the model's output
    split.stats                             # requests, bytes moved, raw bytes

For models ``torch.fx`` cannot trace (most Hugging Face transformers, models with
data-dependent control flow), :class:`CompressAt` measures the same thing in one process:
a forward hook replaces the output of the named layer with ``decode(encode(output))`` and
counts the bytes, while the model runs as usual.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> head, tail = cut(net, "1")
    >>> x = torch.randn(3, 4)
    >>> torch.allclose(tail(head(x)), net(x))
    True
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from ..errors import InputError

__all__ = ["cut", "SplitModel", "SplitStats", "CompressAt"]


class _LeafTracer(fx.Tracer):
    """Traces through every module except the one to cut at, which stays one call."""

    def __init__(self, leaf: str) -> None:
        super().__init__()
        self.leaf = leaf

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name == self.leaf:
            return True
        if self.leaf.startswith(module_qualified_name + ".") or not module_qualified_name:
            return False  # an ancestor of the cut: trace into it
        return super().is_leaf_module(m, module_qualified_name)


def _check_name(model: nn.Module, at: str) -> None:
    names = [n for n, _ in model.named_modules() if n]
    if at not in names:
        close = difflib.get_close_matches(at, names, n=5)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Some names: {', '.join(names[:8])}."
        raise InputError(f"the model has no submodule named {at!r}.{hint}")


def cut(model: nn.Module, at: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """Split ``model`` after its submodule ``at`` (a name from ``model.named_modules()``).

    Returns ``(head, tail)`` with ``tail(head(*inputs)) == model(*inputs)``. Both share the
    model's parameters (no copies). Raises :class:`featcodec.InputError` if the name does
    not exist, the model cannot be traced by ``torch.fx``, the submodule is called more
    than once, or other values besides its output cross the cut.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"cut needs a torch.nn.Module, not {type(model).__name__}.")
    _check_name(model, at)
    tracer = _LeafTracer(at)
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises TraceError, TypeError, ... on dynamic control flow
        raise InputError(
            f"torch.fx cannot trace this model ({type(e).__name__}: {e}); cut it by hand "
            f"into two modules and use featcodec.encode/decode between them."
        ) from None
    root = fx.GraphModule(tracer.root, graph)
    nodes = list(root.graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == at]
    if len(calls) != 1:
        raise InputError(
            f"submodule {at!r} is called {len(calls)} times in forward; cut at a module "
            f"called exactly once."
        )
    cut_node = calls[0]
    pos = {n: i for i, n in enumerate(nodes)}
    i_cut = pos[cut_node]

    # Everything the tail reads from the head's side, apart from the activation itself.
    # Parameters/buffers (get_attr) can be read on both sides.
    crossing = []
    for n in nodes[i_cut + 1 :]:
        for a in n.all_input_nodes:
            if pos[a] <= i_cut and a is not cut_node and a.op != "get_attr" and a not in crossing:
                crossing.append(a)
    if crossing:
        what = ", ".join(f"{a.name} ({a.op} {a.target})" for a in crossing[:6])
        raise InputError(
            f"cutting after {at!r} leaves {len(crossing)} other value(s) crossing the cut: "
            f"{what}. Cut at a layer every path goes through (e.g. the end of a residual block)."
        )

    head_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in nodes[: i_cut + 1]:
        env[n] = head_graph.node_copy(n, lambda a: env[a])
    head_graph.output(env[cut_node])

    tail_graph = fx.Graph()
    tenv: dict[fx.Node, fx.Node] = {cut_node: tail_graph.placeholder("activation")}

    def arg(a: fx.Node) -> fx.Node:
        if a not in tenv:  # a parameter or buffer read on the head's side
            tenv[a] = tail_graph.node_copy(a, arg)
        return tenv[a]

    for n in nodes[i_cut + 1 :]:
        tenv[n] = tail_graph.node_copy(n, arg)

    head = fx.GraphModule(root, head_graph, class_name="Head")
    head.graph.eliminate_dead_code()  # head-side work only the cut activation needs
    head.recompile()
    tail = fx.GraphModule(root, tail_graph, class_name="Tail")
    head.train(model.training)
    tail.train(model.training)
    return head, tail


@dataclass
class SplitStats:
    """What crossed the cut so far: requests served, featcodec bytes moved, and the bytes
    the raw activations would have taken."""

    requests: int = 0
    bytes_moved: int = 0
    raw_bytes: int = 0

    @property
    def bytes_per_request(self) -> float:
        return self.bytes_moved / self.requests if self.requests else 0.0

    @property
    def ratio(self) -> float:
        """Raw bytes over bytes moved (how many times smaller the transfer is)."""
        return self.raw_bytes / self.bytes_moved if self.bytes_moved else 0.0


class SplitModel(nn.Module):
    """A model cut at ``at`` with featcodec between the halves.

    ``codec`` and ``encode_options`` (``bits``, ``quality``, ``target_bpfp``, ``layout``)
    go to :func:`featcodec.encode`. Call :meth:`calibrate` once with a few typical inputs
    to fit a transform to the activation (otherwise ``transform`` is used as given,
    ``"auto"`` by default). ``forward`` runs both halves in this process, as a simulation
    of the two sides; in deployment call :meth:`edge` on one side and :meth:`cloud` on the
    other.
    """

    def __init__(
        self,
        model: nn.Module,
        at: str,
        *,
        codec: str = "index",
        transform: Any = "auto",
        **encode_options: Any,
    ) -> None:
        super().__init__()
        self.at = at
        self.head, self.tail = cut(model, at)
        self.codec = codec
        self.transform = transform
        self.encode_options = encode_options
        self.stats = SplitStats()

    @torch.no_grad()
    def activation(self, *inputs: Any) -> torch.Tensor:
        """The head's output (the tensor that would cross the cut), uncompressed."""
        out = self.head(*inputs)
        if not isinstance(out, torch.Tensor):
            raise InputError(
                f"the output of {self.at!r} is a {type(out).__name__}, not a tensor; cut at a "
                f"layer that returns one tensor."
            )
        return out

    @torch.no_grad()
    def calibrate(self, inputs: Iterable[Any], *, fit: Any = None, **fit_options: Any) -> Any:
        """Fit a transform to head activations of ``inputs`` (each one input, or a tuple
        of inputs), register it, and use it from now on. ``fit`` is the fitting function,
        :func:`featcodec.fit_transform` (Lloyd-Max, default) or :func:`featcodec.fit_uniform`;
        ``fit_options`` go to it (``bits`` defaults to this model's ``bits``).

        From then on streams carry only the transform's id (unless ``embed_transform=True``
        was given): the receiving side needs the transform, e.g.
        ``split.transform.save("t.json")`` here and ``featcodec.load_transform`` there."""
        from .. import api
        from ..transform import fit_transform

        acts = []
        for x in inputs:
            args = x if isinstance(x, tuple) else (x,)
            acts.append(self.activation(*args).float().cpu().numpy())
        if not acts:
            raise InputError("calibrate needs at least one input.")
        fit_options.setdefault("bits", self.encode_options.get("bits") or 8)
        t = (fit or fit_transform)(acts, **fit_options)  # pooled; per channel with channel_axis
        api.register_transform(t)
        self.transform = t
        self.encode_options["bits"] = t.bits
        # both sides know the transform now: send its id, not its levels, with every request
        self.encode_options.setdefault("embed_transform", False)
        return t

    @torch.no_grad()
    def edge(self, *inputs: Any) -> bytes:
        """Device side: run the head and return the encoded activation."""
        from .. import api

        act = self.activation(*inputs)
        blob = api.encode(act, codec=self.codec, transform=self.transform, **self.encode_options)
        self.stats.requests += 1
        self.stats.bytes_moved += len(blob)
        self.stats.raw_bytes += act.numel() * act.element_size()
        return blob

    @torch.no_grad()
    def cloud(self, blob: bytes) -> Any:
        """Server side: decode the activation and run the tail."""
        from .. import api

        transform = self.transform if not isinstance(self.transform, str) else None
        act = api.decode(blob, transform=transform)
        return self.tail(act)

    def forward(self, *inputs: Any) -> Any:
        return self.cloud(self.edge(*inputs))


class CompressAt:
    """Run a model as if it were split after submodule ``at``: a forward hook replaces
    that layer's output by ``featcodec.decode(featcodec.encode(output))``.

    For measuring what a split would cost and change (bytes per call, output agreement)
    on any model, traceable or not. Tuple outputs (e.g. a transformer block's
    ``(hidden, ...)``) have their first element compressed. Use as a context manager or
    call :meth:`remove`. ``codec``/``transform``/``encode_options`` as for
    :class:`SplitModel`; :meth:`calibrate` fits and registers a transform from the
    layer's outputs on sample inputs.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    >>> with CompressAt(net, "1", bits=6) as c:
    ...     y = net(torch.randn(8, 16))
    >>> c.stats.requests, c.stats.raw_bytes
    (1, 2048)
    """

    def __init__(
        self,
        model: nn.Module,
        at: str,
        *,
        codec: str = "index",
        transform: Any = "auto",
        **encode_options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"CompressAt needs a torch.nn.Module, not {type(model).__name__}.")
        _check_name(model, at)
        self.model, self.at = model, at
        self.codec, self.transform, self.encode_options = codec, transform, encode_options
        self.stats = SplitStats()
        self._capture: list[np.ndarray] | None = None
        self._handle = model.get_submodule(at).register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        from .. import api

        first = output[0] if isinstance(output, tuple) else output
        if not isinstance(first, torch.Tensor):
            raise InputError(f"the output of {self.at!r} is a {type(first).__name__}, not a tensor.")
        if self._capture is not None:  # calibrating: record, do not compress
            self._capture.append(first.detach().float().cpu().numpy())
            return output
        with torch.no_grad():
            blob = api.encode(first.detach(), codec=self.codec, transform=self.transform, **self.encode_options)
            transform = self.transform if not isinstance(self.transform, str) else None
            rec = api.decode(blob, transform=transform, device=first.device)
        self.stats.requests += 1
        self.stats.bytes_moved += len(blob)
        self.stats.raw_bytes += first.numel() * first.element_size()
        return (rec, *output[1:]) if isinstance(output, tuple) else rec

    @torch.no_grad()
    def calibrate(self, run: Any, *, fit: Any = None, **fit_options: Any) -> Any:
        """Call ``run()`` (which runs the model on sample inputs) while recording the
        layer's outputs uncompressed, then fit, register and use a transform on them.
        ``fit`` and ``fit_options`` as for :meth:`SplitModel.calibrate`."""
        from .. import api
        from ..transform import fit_transform

        self._capture = []
        try:
            run()
            acts = self._capture
        finally:
            self._capture = None
        if not acts:
            raise InputError(f"calibrate: running the model never reached {self.at!r}.")
        fit_options.setdefault("bits", self.encode_options.get("bits") or 8)
        t = (fit or fit_transform)(acts, **fit_options)  # pooled; per channel with channel_axis
        api.register_transform(t)
        self.transform = t
        self.encode_options["bits"] = t.bits
        self.encode_options.setdefault("embed_transform", False)
        return t

    def remove(self) -> None:
        """Take the hook off: the model runs uncompressed again."""
        self._handle.remove()

    def __enter__(self) -> "CompressAt":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()
