"""Compressed tensor transport over any ``torch.distributed`` process group.

:func:`send` encodes a feature tensor with :func:`featcodec.encode` and sends the stream
as bytes; :func:`recv` receives and decodes it into a tensor of the original shape and
dtype. :func:`isend` / :func:`irecv` are the non-blocking forms. They work over any
backend that carries ``uint8`` tensors (gloo, MPI, NCCL with CUDA byte buffers), with the
same ``dst`` / ``src`` / ``group`` / ``tag`` meaning as ``torch.distributed.send``/``recv``.

Wire protocol (one message): an ``int64`` tensor ``[MAGIC, n]`` followed by ``n`` bytes as
a ``uint8`` tensor holding one featcodec stream. The stream is self-describing and
checksummed, so the receiver needs no shape, dtype or codec options; only a transform
sent by id must be known to the receiver (pass ``transform=`` or register it).

Example (two processes, ranks 0 and 1, after ``dist.init_process_group("gloo", ...)``)::

    # rank 0
    n = featcodec.integrations.distributed.send(hidden, dst=1, codec="index", bits=8)
    # rank 1
    hidden = featcodec.integrations.distributed.recv(src=0)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import FormatError, InputError

__all__ = [
    "send", "recv", "isend", "irecv", "SendHandle", "RecvHandle", "raw_nbytes", "MAGIC", "MAX_MESSAGE_BYTES",
]

MAGIC = 0x4643_5452_414E_5331  # "FCTRANS1"
MAX_MESSAGE_BYTES = 1 << 40
HEADER_BYTES = 16


def _encode(tensor: Any, options: dict[str, Any]) -> bytes:
    from .. import api

    return api.encode(tensor, **options)


def _decode(blob: bytes, transform: Any, device: Any) -> Any:
    from .. import api

    return api.decode(blob, transform=transform, device=device)


def _wire_device(group: Any) -> torch.device:
    """Byte buffers live where the backend wants them: CUDA for NCCL, else the CPU."""
    backend = dist.get_backend(group)
    if str(backend).lower() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _check_initialized() -> None:
    if not (dist.is_available() and dist.is_initialized()):
        raise InputError(
            "torch.distributed is not initialised; call "
            "torch.distributed.init_process_group(...) in every process first."
        )


def _payload(blob: bytes, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    header = torch.tensor([MAGIC, len(blob)], dtype=torch.int64, device=device)
    payload = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    return header, payload.to(device)


def _check_header(header: torch.Tensor, src: Any) -> int:
    magic, n = (int(v) for v in header.cpu().tolist())
    if magic != MAGIC:
        raise FormatError(
            f"the message from rank {src} is not a featcodec transfer (bad magic {magic:#x}); "
            f"both sides must use featcodec.integrations.distributed.send/recv with the same tag."
        )
    if not 0 < n <= MAX_MESSAGE_BYTES:
        raise FormatError(f"the message from rank {src} announces {n} bytes, outside 1..2**40.")
    return n


def send(
    tensor: Any,
    dst: int,
    *,
    group: Any = None,
    tag: int = 0,
    codec: str = "index",
    **encode_options: Any,
) -> int:
    """Encode ``tensor`` and send it to rank ``dst``; return the bytes put on the wire.

    ``codec`` and ``encode_options`` (``bits``, ``transform``, ``quality``,
    ``target_bpfp``, ``layout``) go to :func:`featcodec.encode`. The count includes the
    16-byte length header.

    >>> # on rank 0:  featcodec.integrations.distributed.send(x, dst=1, bits=6)  -> e.g. 4_213
    """
    return isend(tensor, dst, group=group, tag=tag, codec=codec, **encode_options).wait()


def recv(
    src: int | None = None,
    *,
    group: Any = None,
    tag: int = 0,
    transform: Any = None,
    device: Any = None,
) -> Any:
    """Receive one message sent by :func:`send` and decode it.

    ``src=None`` receives from any rank (do not mix it with pending :func:`irecv` handles
    on the same tag: it could take their message). ``transform`` and ``device`` go to
    :func:`featcodec.decode`. Returns a torch tensor (or numpy array, if a numpy array was
    sent) of the sender's shape and dtype.
    """
    _check_initialized()
    if src is not None:  # keep order with any irecv() pending on the same channel
        return irecv(src, group=group, tag=tag, transform=transform, device=device).wait()
    wire = _wire_device(group)
    header = torch.empty(2, dtype=torch.int64, device=wire)
    sender = dist.recv(header, src=src, group=group, tag=tag)
    n = _check_header(header, sender)
    buf = torch.empty(n, dtype=torch.uint8, device=wire)
    dist.recv(buf, src=sender, group=group, tag=tag)
    return _decode(buf.cpu().numpy().tobytes(), transform, device)


@dataclass
class SendHandle:
    """A send in flight. :meth:`wait` blocks until the buffers are handed over and returns
    the bytes sent."""

    nbytes: int
    _works: list[Any] = field(repr=False)
    _buffers: tuple[torch.Tensor, ...] = field(repr=False)

    def wait(self) -> int:
        for w in self._works:
            if w is not None:
                w.wait()
        self._works = []
        return self.nbytes

    def is_completed(self) -> bool:
        return all(w is None or w.is_completed() for w in self._works)


def isend(
    tensor: Any,
    dst: int,
    *,
    group: Any = None,
    tag: int = 0,
    codec: str = "index",
    **encode_options: Any,
) -> SendHandle:
    """Non-blocking :func:`send`: encodes now (on this thread), posts the transfer and
    returns a :class:`SendHandle`. Keep the handle until ``wait()``."""
    _check_initialized()
    if not isinstance(dst, int) or isinstance(dst, bool):
        raise InputError(f"dst must be an int rank, not {dst!r}.")
    blob = _encode(tensor, {"codec": codec, **encode_options})
    header, payload = _payload(blob, _wire_device(group))
    works = [
        dist.isend(header, dst=dst, group=group, tag=tag),
        dist.isend(payload, dst=dst, group=group, tag=tag),
    ]
    return SendHandle(len(blob) + HEADER_BYTES, works, (header, payload))


class RecvHandle:
    """A receive in flight, from :func:`irecv`.

    Messages from one source with one tag (a *channel*) arrive in the order they were sent,
    and the handles of a channel take them in the order the handles were made, whatever
    order ``wait()`` is called in. The first pending handle of a channel posts its 16-byte
    header receive at once; the payload, whose size the header gives, is received and
    decoded when a ``wait()`` needs it. ``wait()`` returns the tensor (again on later calls).
    """

    def __init__(self, src: int, group: Any, tag: int, transform: Any, device: Any) -> None:
        self._src, self._group, self._tag = src, group, tag
        self._transform, self._device = transform, device
        self._wire = _wire_device(group)
        self._header = torch.empty(2, dtype=torch.int64, device=self._wire)
        self._work: Any = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = False
        self._queue = _PENDING.setdefault((id(group), src, tag), deque())
        self._queue.append(self)
        if len(self._queue) == 1:
            self._post_header()

    def _post_header(self) -> None:
        if self._work is None:
            self._work = dist.irecv(self._header, src=self._src, group=self._group, tag=self._tag)

    def _complete(self) -> None:
        """Receive this handle's message (it must be the channel's oldest)."""
        try:
            self._post_header()
            self._work.wait()
            n = _check_header(self._header, self._src)
            buf = torch.empty(n, dtype=torch.uint8, device=self._wire)
            dist.recv(buf, src=self._src, group=self._group, tag=self._tag)
            self._result = _decode(buf.cpu().numpy().tobytes(), self._transform, self._device)
        except BaseException as e:  # kept for this handle's wait(); later handles go on
            self._error = e
        finally:
            self._done = True
            self._queue.popleft()
            if self._queue:
                self._queue[0]._post_header()

    def is_completed(self) -> bool:
        """True once the message of this handle has been received and decoded."""
        return self._done

    def wait(self) -> Any:
        if not self._done:
            while self._queue[0] is not self:
                self._queue[0]._complete()
            self._complete()
        if self._error is not None:
            raise self._error
        return self._result


_PENDING: dict[tuple[int, int, int], deque[RecvHandle]] = {}


def irecv(
    src: int,
    *,
    group: Any = None,
    tag: int = 0,
    transform: Any = None,
    device: Any = None,
) -> RecvHandle:
    """Non-blocking :func:`recv` from rank ``src`` (a definite rank); returns a
    :class:`RecvHandle` whose ``wait()`` gives the decoded tensor."""
    _check_initialized()
    if not isinstance(src, int) or isinstance(src, bool):
        raise InputError(f"irecv needs a definite source rank (an int), not {src!r}; use recv(src=None) for any source.")
    return RecvHandle(src, group, tag, transform, device)


def raw_nbytes(tensor: Any) -> int:
    """Bytes the tensor would take on the wire uncompressed (``numel * element_size``)."""
    if isinstance(tensor, torch.Tensor):
        return tensor.numel() * tensor.element_size()
    return int(np.asarray(tensor).nbytes)
