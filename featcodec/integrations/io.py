"""Read and write feature tensors in the files people keep them in: ``.npy``, ``.pt`` and
``.safetensors``, safely.

* ``.npy`` is read with ``allow_pickle=False``: object arrays are refused.
* ``.pt`` / ``.pth`` is read with ``torch.load(weights_only=True)``: only tensors and plain
  containers are unpickled, never arbitrary objects.
* ``.safetensors`` needs the ``safetensors`` package (``pip install safetensors``).

A file may hold one tensor (``.npy``, a bare tensor in ``.pt``) or several (a dict in
``.pt``, any ``.safetensors``): :func:`load_tensors` returns all of them by name,
:func:`load_tensor` returns one (the only one, or the one named by ``key``).
Writes are atomic: a file is written beside the target and renamed over it.

Every failure raises a :class:`featcodec.FeatcodecError` subclass that says what to do.

Example:
    >>> import numpy as np, tempfile, os
    >>> from featcodec.integrations.io import save_tensor, load_tensor
    >>> path = os.path.join(tempfile.mkdtemp(), "f.npy")
    >>> save_tensor(path, np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> load_tensor(path).shape
    (2, 3)
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

from ..errors import FormatError, InputError

__all__ = [
    "TENSOR_SUFFIXES",
    "tensor_format",
    "load_tensors",
    "load_tensor",
    "save_tensor",
    "save_tensors",
    "write_bytes_atomic",
]

PathLike = Union[str, "os.PathLike[str]"]
Tensor = Any  # torch.Tensor or numpy.ndarray

TENSOR_SUFFIXES = {".npy": "npy", ".pt": "pt", ".pth": "pt", ".safetensors": "safetensors"}


def tensor_format(path: PathLike) -> str:
    """Return ``"npy"``, ``"pt"`` or ``"safetensors"`` for a path, from its suffix.

    >>> tensor_format("features/layer9.safetensors")
    'safetensors'
    """
    suffix = Path(path).suffix.lower()
    fmt = TENSOR_SUFFIXES.get(suffix)
    if fmt is None:
        raise InputError(
            f"{path}: featcodec reads and writes tensors as .npy, .pt/.pth or .safetensors; "
            f"the suffix {suffix or '(none)'!r} is none of these. Rename the file or convert it."
        )
    return fmt


def _check_readable(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file. Check the path.")
    if p.is_dir():
        raise InputError(f"{p} is a directory; give a tensor file.")
    return p


def _import_torch() -> Any:
    try:
        import torch
    except Exception as e:  # pragma: no cover - torch is a dependency
        raise InputError(f"reading or writing .pt files needs torch, which failed to import: {e}")
    return torch


def _import_safetensors() -> Any:
    try:
        import safetensors
        import safetensors.torch
    except ImportError:
        raise InputError(
            ".safetensors files need the safetensors package: pip install safetensors"
        ) from None
    return safetensors


def _flatten(obj: Any, prefix: str, out: dict[str, Tensor]) -> None:
    """Collect tensors and arrays from nested dicts/lists/tuples under dotted names."""
    torch = _import_torch()
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        out[prefix] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def _load_npy(p: Path) -> dict[str, Tensor]:
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as e:
        raise FormatError(
            f"{p}: not a plain numeric .npy file ({e}). featcodec never unpickles objects; "
            f"save the array with a numeric dtype."
        ) from None
    except (OSError, EOFError) as e:
        raise FormatError(f"{p}: cannot read as .npy ({e}); the file is damaged or not .npy.") from None
    if isinstance(a, np.lib.npyio.NpzFile):  # np.load sniffs zip archives
        a.close()
        raise FormatError(f"{p}: is an .npz archive, not .npy; save each array with np.save.")
    return {"": a}


def _load_pt(p: Path) -> dict[str, Tensor]:
    torch = _import_torch()
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise FormatError(
            f"{p}: holds objects a weights-only load refuses ({str(e).splitlines()[0]}). "
            f"featcodec reads only tensors and plain containers of them; "
            f"re-save with torch.save(tensor) or torch.save(dict_of_tensors)."
        ) from None
    except Exception as e:  # a damaged file surfaces as many types (KeyError, RuntimeError, ...)
        raise FormatError(
            f"{p}: cannot read as a torch file ({type(e).__name__}: {e}); "
            f"the file is damaged or not .pt."
        ) from None
    out: dict[str, Tensor] = {}
    _flatten(obj, "", out)
    if not out:
        raise FormatError(f"{p}: contains no tensors.")
    return out


def _load_safetensors(p: Path) -> dict[str, Tensor]:
    st = _import_safetensors()
    try:
        return dict(st.torch.load_file(str(p)))
    except Exception as e:  # SafetensorError, OSError, ... from the Rust reader
        raise FormatError(f"{p}: cannot read as .safetensors ({e}); the file is damaged or not safetensors.") from None


def load_tensors(path: PathLike) -> dict[str, Tensor]:
    """Load every tensor in a file, by name.

    ``.npy`` gives ``{"": array}``; ``.pt`` dicts, lists and nested containers give dotted
    names (``"layers.0.out"``); ``.safetensors`` gives its own names. ``.npy`` values are numpy
    arrays, the others torch tensors on the CPU (bfloat16 stays bfloat16).
    """
    p = _check_readable(path)
    fmt = tensor_format(p)
    if fmt == "npy":
        return _load_npy(p)
    if fmt == "pt":
        return _load_pt(p)
    return _load_safetensors(p)


def load_tensor(path: PathLike, key: str | None = None) -> Tensor:
    """Load one tensor from a file: the only one it holds, or the one named ``key``.

    >>> import numpy as np, tempfile, os, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "acts.pt")
    >>> save_tensors(path, {"a": torch.ones(2), "b": torch.zeros(3)})
    >>> load_tensor(path, key="b").shape
    torch.Size([3])
    """
    tensors = load_tensors(path)
    if key is None:
        if len(tensors) == 1:
            return next(iter(tensors.values()))
        names = ", ".join(sorted(tensors)[:10]) + (", ..." if len(tensors) > 10 else "")
        raise InputError(
            f"{path} holds {len(tensors)} tensors ({names}); say which one with key= "
            f"(on the command line: --key NAME)."
        )
    if key not in tensors:
        names = ", ".join(sorted(tensors)[:10]) + (", ..." if len(tensors) > 10 else "")
        raise InputError(f"{path} has no tensor named {key!r}; it holds: {names}.")
    return tensors[key]


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed over it."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        raise InputError(f"{p.parent}: no such directory. Create it first.")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_save(p: Path, write: Any) -> None:
    if not p.parent.exists():
        raise InputError(f"{p.parent}: no such directory. Create it first.")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _as_torch(x: Tensor) -> Any:
    torch = _import_torch()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().contiguous()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise InputError(f"cannot save a {type(x).__name__}; give a torch.Tensor or numpy.ndarray.")


def _as_numpy(x: Tensor, p: Path) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    torch = _import_torch()
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bfloat16:
            raise InputError(
                f"{p}: numpy has no bfloat16, so .npy cannot hold this tensor; "
                f"write .pt or .safetensors, or convert with .float()."
            )
        return x.detach().cpu().numpy()
    raise InputError(f"cannot save a {type(x).__name__}; give a torch.Tensor or numpy.ndarray.")


def save_tensors(path: PathLike, tensors: Mapping[str, Tensor]) -> None:
    """Write named tensors to a ``.pt`` or ``.safetensors`` file (``.npy`` takes exactly one)."""
    p = Path(path)
    fmt = tensor_format(p)
    if not tensors:
        raise InputError("nothing to save: the tensor dict is empty.")
    if fmt == "npy":
        if len(tensors) != 1:
            raise InputError(f"{p}: .npy holds one array; write {len(tensors)} tensors to .pt or .safetensors.")
        arr = _as_numpy(next(iter(tensors.values())), p)
        _atomic_save(p, lambda tmp: np.save(tmp, arr, allow_pickle=False))
    elif fmt == "pt":
        torch = _import_torch()
        data = {str(k): _as_torch(v) for k, v in tensors.items()}
        _atomic_save(p, lambda tmp: torch.save(data, tmp))
    else:
        st = _import_safetensors()
        data = {str(k): _as_torch(v) for k, v in tensors.items()}
        _atomic_save(p, lambda tmp: st.torch.save_file(data, tmp))


def save_tensor(path: PathLike, x: Tensor, key: str = "tensor") -> None:
    """Write one tensor: ``.npy`` as a plain array, ``.pt`` as a bare tensor, ``.safetensors``
    under the name ``key``."""
    p = Path(path)
    fmt = tensor_format(p)
    if fmt == "pt":
        torch = _import_torch()
        t = _as_torch(x)
        _atomic_save(p, lambda tmp: torch.save(t, tmp))
    else:
        save_tensors(p, {key: x})
