"""The pretrained learned codecs ``"hyperprior"`` and ``"elic"`` (each when shipped).

A codec turns a 2-D index plane (the DT-UFC transform's output) into payload bytes and
back; the container around the payload is the library's. Weights and entropy tables
come from ``featcodec/codecs/learned/weights`` (sha256-checked, never from the network).

Determinism: the z symbols are integers, the hyper-decoder (and ELIC's context model)
runs in exact fixed point (:mod:`.integer_entropy`, :mod:`.latents`), and the Gaussian
table of every latent is chosen by integer comparison, so any process on any machine
decodes the same symbols. Planes are
edge-replicated to a multiple of 16 (the analysis transform's stride) before analysis and
cropped after synthesis; the hyper-decoder's output, a multiple of 64, is cropped to the
latents. CompressAI itself needs multiples of 64: on a 140 x 140 plane that is 88% more
area to code. The multiple is the stream's ``pad`` parameter (absent in streams made
before it existed, which used 64).

Example:
    >>> import numpy as np
    >>> from featcodec.codecs.learned.codec import HyperpriorCodec, available_qualities
    >>> c = HyperpriorCodec()
    >>> plane = (np.arange(100 * 70) % 256).astype(np.uint8).reshape(100, 70)
    >>> payload, params = c.encode_plane(plane, 8, quality=available_qualities("hyperprior")[0])
    >>> c.decode_plane(payload, plane.shape, 8, params).shape
    (100, 70)
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...errors import ChecksumError, FormatError, InputError
from ...stages.outliers import decode_positions, encode_positions
from . import rans_backend

__all__ = ["LearnedModel", "LearnedCodec", "HyperpriorCodec", "ElicCodec", "load_model", "learned_codecs",
           "available_qualities", "frame", "WEIGHTS_DIR", "manifest"]

#: Shipped weights; ``FEATCODEC_LEARNED_WEIGHTS`` points at another export (own training).
WEIGHTS_DIR = Path(os.environ.get("FEATCODEC_LEARNED_WEIGHTS") or Path(__file__).with_name("weights"))
PAD = 16            #: new streams: planes edge-replicated to a multiple of this
PADS = (16, 64)     #: what a stream may say (64: streams made before ``pad`` was stored)
_LOCK = threading.Lock()
#: a guarded stream rounds down where the network output is within this many index units
#: of ``k + 0.5`` (measured: outputs differ by up to 2.4e-4 between 1 and 2 threads)
GUARD = 2.0**-9


@lru_cache(maxsize=1)
def manifest() -> dict:
    """The shipped weights' manifest (empty when no weights are shipped)."""
    p = WEIGHTS_DIR / "manifest.json"
    if not p.exists():
        return {"models": [], "sha256": {}}
    return json.loads(p.read_text())


def available_qualities(codec: str) -> list[int]:
    """Qualities shipped for ``codec`` (1 = lowest rate)."""
    return sorted(m["quality"] for m in manifest()["models"] if m["codec"] == codec)


def _entry(codec: str, quality: int) -> dict:
    for m in manifest()["models"]:
        if m["codec"] == codec and m["quality"] == quality:
            return m
    raise InputError(f"{codec!r} has no quality {quality!r}; "
                     f"choose one of {available_qualities(codec)}")


class LearnedModel:
    """One shipped network with its ready entropy tables."""

    def __init__(self, path: str | Path, sha256: str | None = None):
        import torch
        from safetensors.torch import load

        from .integer_entropy import FixedPointHyperSynthesis, scale_thresholds
        from .latents import CheckerboardGroupLatents, ScaleLatents
        from .models import build_model, for_inference

        raw = Path(path).read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        if sha256 is not None and self.sha256 != sha256:
            raise ChecksumError(f"{path} does not match its sha256 in manifest.json "
                                "(corrupted install?): reinstall featcodec")
        t = load(raw)
        from safetensors import safe_open  # metadata

        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        self.config = json.loads(meta["config"])
        self.codec = meta["codec"]
        self.quality = int(meta["quality"])
        self.steps = int(meta.get("steps", 0))  # training steps of the last stage
        net = build_model(self.config)
        state = {}
        for k, v in t.items():
            if not k.startswith("net."):
                continue
            if v.dtype == torch.int8:  # int8 export: one scale per slice of dim 0
                scale = t.get("scale." + k[4:])
                if scale is None or scale.numel() != v.shape[0]:
                    raise FormatError(f"{path}: int8 weight {k} has no matching scale")
                v = v.float() * scale.float().view(-1, *[1] * (v.ndim - 1))
            state[k[4:]] = v.float() if v.is_floating_point() else v
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(not (_is_entropy_state(k) or k.endswith(".mask")) for k in missing):
            raise FormatError(f"{path}: weights do not fit the {self.config} network")
        self.net = net.eval()
        for p_ in self.net.parameters():
            p_.requires_grad_(False)
        n = lambda k: t[k].numpy()  # noqa: E731
        self.eb = (np.ascontiguousarray(n("eb.cdf")), n("eb.cdf_length").copy(),
                   n("eb.offset").copy())
        self.medians = t["eb.medians"].clone()
        self.gc = (np.ascontiguousarray(n("gc.cdf")), n("gc.cdf_length").copy(),
                   n("gc.offset").copy())
        self.scale_table = n("gc.scale_table").copy()
        self.thresholds = scale_thresholds(self.scale_table)
        if self.config["arch"] == "elic":
            hyper = self.net.latent_codec["hyper"]
            self.h_a, h_s = hyper.h_a, hyper.h_s
            self.latents = CheckerboardGroupLatents(self.net.latent_codec["y"], self.gc,
                                                    self.thresholds)
        else:  # ScaleHyperprior: the hyper-encoder sees |y|
            self.h_a, h_s = (lambda y: self.net.h_a(torch.abs(y))), self.net.h_s
            self.latents = ScaleLatents(self.gc, self.thresholds)
        self.hs = FixedPointHyperSynthesis(h_s)
        self.side_channels = [m for m in h_s if hasattr(m, "out_channels")][-1].out_channels
        self.g_a = for_inference(self.net.g_a)
        self.g_s = for_inference(self.net.g_s)
        self.id = self.sha256[:16]

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path) -> "LearnedModel":
        """A ``featcodec train`` checkpoint as it would ship: exported (float16 conv
        weights, entropy tables; :mod:`.export`) and loaded like the shipped weights, so
        it codes exactly as the shipped codec would."""
        import tempfile

        from .export import export_checkpoint

        with tempfile.TemporaryDirectory() as d:
            return cls(Path(d) / export_checkpoint(ckpt, d, "run", 0)["file"])

    def to_compressai(self):
        """CompressAI's own network (``ScaleHyperprior`` or ``Elic2022Official``) with these
        weights and entropy tables: its ``compress()``/``decompress()`` (inputs padded to
        multiples of 64) code what this model codes, with CompressAI's coder and float
        table choice.

        Example:
            >>> import torch
            >>> m = load_model("hyperprior", available_qualities("hyperprior")[0])
            >>> out = m.to_compressai().compress(torch.rand(1, 1, 64, 64))
            >>> sorted(out)
            ['shape', 'strings']
        """
        import copy

        import torch

        from compressai.entropy_models import EntropyBottleneck, GaussianConditional

        ref = copy.deepcopy(self.net).eval()
        for mod in ref.modules():
            if isinstance(mod, (EntropyBottleneck, GaussianConditional)):
                cdf, length, offset = self.eb if isinstance(mod, EntropyBottleneck) else self.gc
                mod._quantized_cdf = torch.from_numpy(cdf.copy())
                mod._cdf_length = torch.from_numpy(length.copy())
                mod._offset = torch.from_numpy(offset.copy())
            if isinstance(mod, EntropyBottleneck):
                with torch.no_grad():
                    mod.quantiles[:, 0, 1] = self.medians
            elif isinstance(mod, GaussianConditional):
                mod.scale_table = torch.from_numpy(self.scale_table.copy())
        return ref

    # -- analysis / synthesis -------------------------------------------------------
    def _z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        c = shape[1]
        return np.broadcast_to(np.arange(c, dtype=np.int32).reshape(1, c, 1, 1), shape)

    @staticmethod
    def _crop(scales, hw):
        """The hyper-decoder's scales cropped to the latents' (H/16, W/16)."""
        return scales[:, :, : hw[0], : hw[1]].contiguous()

    def compress(self, x) -> list[bytes]:
        """``x``: float32 tensor (1, 1, H, W), H and W multiples of 16 -> the z string,
        then the latents' strings (:attr:`n_strings` in all)."""
        import torch

        with torch.inference_mode():
            y = self.g_a(x.contiguous(memory_format=torch.channels_last)).contiguous()
            z = self.h_a(y)
            z_sym = torch.round(z - self.medians.view(1, -1, 1, 1)).to(torch.int32)
            z_str = rans_backend.encode(z_sym.numpy(), self._z_indexes(z_sym.shape), *self.eb)
            side = self._crop(self.hs(z_sym, self.medians), y.shape[2:])
            return [z_str, *self.latents.encode(y, side)]

    @property
    def n_strings(self) -> int:
        """How many strings :meth:`compress` returns."""
        return 1 + self.latents.n_strings

    def decompress(self, strings: list[bytes], hw: tuple[int, int]):
        """Inverse of :meth:`compress` for padded size ``hw``; float32 (1, 1, H, W)."""
        import torch

        h, w = hw
        n, c = int(self.config["N"]), self.side_channels
        zshape = (1, n, -(-h // 64), -(-w // 64))
        with torch.inference_mode():
            z_sym = rans_backend.decode(strings[0], self._z_indexes(zshape), *self.eb)
            side = self.hs(torch.from_numpy(z_sym), self.medians)
            if side.shape[1] != c or side.shape[2] < h // 16 or side.shape[3] < w // 16:
                raise FormatError("payload does not fit this model")
            y_hat = self.latents.decode(strings[1:], self._crop(side, (h // 16, w // 16)),
                                        (h // 16, w // 16))
            return self.g_s(y_hat.contiguous(memory_format=torch.channels_last)).contiguous()


def frame(strings: list[bytes]) -> bytes:
    """A learned codec's payload: the strings, each but the last after its u32 length."""
    return b"".join(struct.pack("<I", len(s)) + s for s in strings[:-1]) + strings[-1]


def _round(t: Any, guarded: np.ndarray | None) -> np.ndarray:
    """The uint8 index plane of the network output ``t`` (float32 torch, index units):
    rounded to the nearest, but down at the flat positions ``guarded``."""
    import torch

    with torch.inference_mode():
        out = torch.round(t)
        if guarded is not None and guarded.size:
            pos = torch.from_numpy(guarded)
            out.view(-1)[pos] = torch.floor(t.reshape(-1)[pos])
        return out.to(torch.uint8).numpy()


def _check_guard(guard: Any, size: int, payload_len: int) -> tuple[int, int]:
    """The checked ``guard`` parameter ``[count, bytes]`` of a plane of ``size`` values
    whose payload has ``payload_len`` bytes; FormatError if malformed."""
    if not (isinstance(guard, list) and len(guard) == 2 and all(type(v) is int for v in guard)
            and 0 <= guard[0] <= size and guard[0] <= guard[1] <= 5 * guard[0] and guard[1] < payload_len):
        raise FormatError(f"learned-codec stream has a malformed 'guard' parameter {str(guard)[:60]}.")
    return guard[0], guard[1]


def _is_entropy_state(key: str) -> bool:
    """State-dict keys of the entropy models (shipped as ready tables instead)."""
    return any(part in ("entropy_bottleneck", "gaussian_conditional") for part in key.split("."))


@lru_cache(maxsize=None)
def load_model(codec: str, quality: int) -> LearnedModel:
    """Load (once per process) the shipped model ``codec`` at ``quality``."""
    e = _entry(codec, quality)
    return LearnedModel(WEIGHTS_DIR / e["file"], manifest()["sha256"][e["file"]])


def _pad(x, mult: int):
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


class LearnedCodec:
    """A shipped learned codec (:class:`HyperpriorCodec`, :class:`ElicCodec`).

    Payload: the model's strings (the z string first), each but the last preceded by its
    length as a little-endian u32.
    """

    name = ""

    def _check_plane(self, plane: np.ndarray, bits: int) -> np.ndarray:
        plane = np.asarray(plane)
        if plane.ndim != 2 or plane.size == 0:
            raise InputError(f"the {self.name} codec needs a non-empty 2-D plane, "
                             f"got shape {plane.shape}")
        if plane.dtype not in (np.uint8, np.uint16) or not 1 <= int(bits) <= 8:
            raise InputError(f"the {self.name} codec codes indices of at most 8 bits; "
                             f"got {plane.dtype} with bits={bits}: use bits<=8")
        if int(plane.max()) >= 1 << int(bits):
            raise InputError(f"plane has index {int(plane.max())} >= 2**{bits}")
        return plane

    def encode_plane(self, plane: np.ndarray, bits: int = 8, *, quality: int | None = None,
                     target_bpfp: float | None = None,
                     stream_size: Callable[[int, dict], int] | None = None,
                     guard: bool = False, reconstruction: list | None = None) -> tuple[bytes, dict]:
        """Plane of indices -> (payload, params). ``target_bpfp`` picks the highest
        quality whose stream stays within that many bits per value (the lowest quality if
        none fits): the whole stream as ``stream_size(payload length, params)`` counts it
        (:func:`featcodec.encode` passes it), else the payload alone.

        ``guard=True`` (the residual stage asks for it, format version 6) makes the decoded
        plane reproducible although the synthesis transform's float convolutions are not
        bit-identical across thread counts or machines: the encoder decodes its own
        payload and lists the positions whose network output lies within
        :data:`GUARD` index units of a rounding boundary (``k + 0.5``); there every
        decoder rounds down, elsewhere to the nearest. Any decoder whose output differs
        from the encoder's by less than :data:`GUARD` then gets the encoder's plane, which
        is appended to ``reconstruction`` when a list is given."""
        import torch

        plane = self._check_plane(plane, bits)
        qs = available_qualities(self.name)
        if not qs:
            raise InputError(f"no weights for codec {self.name!r} are installed")
        scale = float((1 << int(bits)) - 1)
        x = torch.from_numpy(plane.astype(np.float32) / scale)[None, None]
        xp = _pad(x, PAD)
        if target_bpfp is not None:
            if not target_bpfp > 0:
                raise InputError("target_bpfp must be a positive number of bits per value")
            return self._search(xp, plane.size, float(target_bpfp), qs,
                                stream_size or (lambda n, _params: n))
        if quality is None:
            quality = qs[len(qs) // 2]
        payload, params = self._encode(xp, int(quality))
        if guard:
            payload, params = self._guard(payload, params, plane.shape, bits, reconstruction)
        return payload, params

    def _guard(self, payload: bytes, params: dict, shape: tuple[int, int], bits: int,
               reconstruction: list | None) -> tuple[bytes, dict]:
        """``payload`` with the guarded positions appended and ``params["guard"]``
        (see :meth:`encode_plane`)."""
        import torch

        t = self._index_units(payload, shape, bits, params)
        with torch.inference_mode():
            near = (t - torch.floor(t) - 0.5).abs() < GUARD
        pos = np.flatnonzero(near.numpy())
        raw = encode_positions(pos)
        if reconstruction is not None:  # what decode_plane gives every decoder
            reconstruction.append(_round(t, pos))
        return payload + raw, {**params, "guard": [int(pos.size), len(raw)]}

    @staticmethod
    def format_version(params: dict) -> int:
        """The lowest stream format version that holds these ``codec_params``: 6 with
        ``guard``, else any."""
        from ...stream.container import RESIDUAL_VERSION

        return RESIDUAL_VERSION if "guard" in params else 1

    def _encode(self, xp, quality: int) -> tuple[bytes, dict]:
        model = load_model(self.name, quality)
        payload = frame(model.compress(xp))
        return payload, {"quality": quality, "model": model.id,
                                                   "rans": rans_backend.BACKEND, "pad": PAD}

    def _search(self, xp, n: int, target: float, qs: list[int],
                stream_size: Callable[[int, dict], int]) -> tuple[bytes, dict]:
        lo, hi = 0, len(qs) - 1
        best = None
        while lo <= hi:  # rate grows with quality: binary search the highest that fits
            mid = (lo + hi) // 2
            payload, params = self._encode(xp, qs[mid])
            if 8 * stream_size(len(payload), params) / n <= target:
                best = (payload, params)
                lo = mid + 1
            else:
                hi = mid - 1
        return best if best is not None else self._encode(xp, qs[0])

    def decode_plane(self, payload: bytes, shape: tuple[int, int], bits: int,
                     params: dict) -> np.ndarray:
        """Payload -> plane of indices (uint8), bounds-checked. With ``guard`` in
        ``params`` (format version 6) the payload ends with the guarded positions, where
        the index is the network output rounded down instead of to the nearest."""
        h, w = (int(s) for s in shape)
        if h <= 0 or w <= 0:
            raise FormatError(f"bad plane shape {shape}")
        payload = bytes(payload)
        guarded = None
        if "guard" in params:
            count, nbytes = _check_guard(params["guard"], h * w, len(payload))
            try:
                guarded = decode_positions(payload[len(payload) - nbytes:], count, h * w)
            except FormatError:
                raise FormatError("learned-codec stream's guarded positions are corrupt.") from None
            payload = payload[: len(payload) - nbytes]
        return _round(self._index_units(payload, (h, w), bits, params), guarded)

    def _index_units(self, payload: bytes, shape: tuple[int, int], bits: int, params: dict):
        """The network's reconstruction of the plane before rounding: a float32 torch
        tensor of ``shape`` in index units, clamped to ``[0, 2**bits - 1]``."""
        import torch

        h, w = shape
        q = params.get("quality")
        if q not in available_qualities(self.name):
            raise FormatError(f"stream needs {self.name} quality {q!r}, which this "
                              "featcodec does not ship: upgrade featcodec")
        model = load_model(self.name, int(q))
        if params.get("model") != model.id:
            raise FormatError(f"stream was made with {self.name} weights {params.get('model')}"
                              f", this featcodec has {model.id}: decode with the featcodec "
                              "version that encoded it")
        if params.get("rans", "featcodec") != rans_backend.BACKEND:
            raise FormatError(f"stream was entropy-coded by {params.get('rans')!r}, this "
                              f"build has {rans_backend.BACKEND!r}: install featcodec with "
                              "its compiled core")
        pad = params.get("pad", 64)
        if type(pad) is not int or pad not in PADS:
            raise FormatError(f"stream pads planes to a multiple of {pad!r:.20}; this featcodec "
                              f"knows {list(PADS)}: upgrade featcodec")
        strings, pos = [], 0
        for _ in range(model.n_strings - 1):
            if len(payload) - pos < 4:
                raise FormatError("learned-codec payload is truncated in its string lengths")
            (n,) = struct.unpack_from("<I", payload, pos)
            if n > len(payload) - pos - 4:
                raise FormatError("learned-codec payload is truncated")
            strings.append(payload[pos + 4:pos + 4 + n])
            pos += 4 + n
        strings.append(payload[pos:])
        hp, wp = h + (-h) % pad, w + (-w) % pad
        if hp * wp > 1 << 31:
            raise FormatError("plane shape in stream is implausibly large")
        x = model.decompress(strings, (hp, wp))
        scale = float((1 << int(bits)) - 1)
        with torch.inference_mode():
            return x[0, 0, :h, :w].clamp(0.0, 1.0) * scale


class HyperpriorCodec(LearnedCodec):
    """Learned codec ``"hyperprior"``: 1-channel reduced-width ScaleHyperprior."""

    name = "hyperprior"


class ElicCodec(LearnedCodec):
    """Learned codec ``"elic"``: 1-channel reduced-width ELIC (``Elic2022Official``),
    checkerboard and channel-group context in fixed point (:mod:`.latents`)."""

    name = "elic"


def learned_codecs() -> list[str]:
    """The registered codecs whose pretrained weights ship with featcodec, sorted
    (``"elic"``, ``"hyperprior"``).

    Example:
        >>> import featcodec
        >>> set(learned_codecs()) <= set(featcodec.available_codecs())
        True
    """
    from featcodec.codecs import available_codecs

    return sorted({m["codec"] for m in manifest()["models"]} & set(available_codecs()))


def register() -> list[str]:
    """Register the shipped learned codecs with featcodec's codec registry (if present)."""
    names = sorted({m["codec"] for m in manifest()["models"]})
    try:
        from featcodec.codecs import register_codec  # type: ignore
    except ImportError:
        return names
    for cls in (HyperpriorCodec, ElicCodec):
        if cls.name in names:
            register_codec(cls.name, cls)
    return names
