"""The ``featcodec`` command line.

Subcommands::

    featcodec demo                         the main job on bundled real features
    featcodec fit   FILES -o t.json        fit a transform to sample features
    featcodec encode FILES [-o OUT]        tensor files -> .fc streams
    featcodec decode FILES [-o OUT]        .fc streams -> tensor files
    featcodec info  FILES                  print stream headers
    featcodec eval  FILES                  rate and distortion of codecs on files
    featcodec bench FILES                  encode/decode speed on files
    featcodec train ...                    train a learned codec (if installed)

Tensor files are ``.npy``, ``.pt``/``.pth`` (loaded weights-only) or ``.safetensors``.

Exit status: 0 success; 1 bad input, bad stream or I/O failure (the message says what to
do); 2 bad command line; 3 an optional part is not installed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import FeatcodecError, InputError

__all__ = ["main", "build_parser", "distortion", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_MISSING"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
STREAM_SUFFIX = ".fc"


class MissingPart(Exception):
    """An optional component (learned codecs, demo data) is not installed."""


# ----------------------------------------------------------------------------- helpers


def distortion(x: Any, y: Any) -> dict[str, float]:
    """MSE, PSNR and max abs error of reconstruction ``y`` against original ``x``
    (:func:`featcodec.metrics.mse` / :func:`featcodec.metrics.psnr`: the peak is the
    original's value range; a constant original gets ``nan`` PSNR).

    >>> d = distortion(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.5]))
    >>> round(d["mse"], 4), round(d["psnr"], 2), d["max_abs"]
    (0.0833, 16.81, 0.5)
    """
    from .. import metrics

    mse = metrics.mse(x, y)
    try:
        psnr = metrics.psnr(x, y)
    except InputError:  # constant original: no value range to measure against
        psnr = math.nan
    a, b = _as_f64(x), _as_f64(y)
    return {"mse": mse, "psnr": psnr, "max_abs": float(np.abs(a - b).max())}


def _as_f64(x: Any) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().to(torch.float64).numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x, dtype=np.float64)


def _numel(x: Any) -> int:
    return int(np.prod(tuple(x.shape))) if len(tuple(x.shape)) else 1


def _raw_nbytes(x: Any) -> int:
    if hasattr(x, "element_size"):
        return _numel(x) * int(x.element_size())
    return int(np.asarray(x).nbytes)


def _progress(items: Iterable[Any], args: argparse.Namespace, desc: str, total: int | None = None) -> Iterable[Any]:
    """A tqdm bar on stderr when it is a terminal and --quiet is not given."""
    if getattr(args, "quiet", False):
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit="file", leave=False, disable=None, file=sys.stderr)


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _encode_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"transform": _transform_arg(args)}
    max_error = getattr(args, "max_error", None)
    if max_error is not None:  # it picks the transform itself: encode() rejects any other given
        opts["max_error"] = max_error
        if opts["transform"] == "auto":
            del opts["transform"]
    for name in ("bits", "quality", "target_bpfp"):
        v = getattr(args, name, None)
        if v is not None:
            opts[name] = v
    for name in ("outliers", "scales", "spatial"):  # the value stages (featcodec.encode's options)
        v = getattr(args, name, None)
        if v is not None:
            opts[name] = v
    if getattr(args, "rotation", False):
        opts["rotation"] = True
    if getattr(args, "layout", None):
        opts["layout"] = args.layout
    if getattr(args, "no_embed", False):
        opts["embed_transform"] = False
    return opts


def _transform_arg(args: argparse.Namespace) -> Any:
    """``auto``/``uniform`` as given; anything else is a transform file to load (once)."""
    spec = getattr(args, "transform", None) or "auto"
    if spec in ("auto", "uniform"):
        return spec
    cached = getattr(args, "_transform_obj", None)
    if cached is None:
        from .. import api
        from ..transform import load_transform

        if not Path(spec).is_file():
            raise InputError(f"--transform {spec}: no such file; give a transform file from `featcodec fit`, or auto/uniform.")
        cached = load_transform(spec)
        api.register_transform(cached)
        args._transform_obj = cached
    return cached


def _out_path(src: Path, out: str | None, n_inputs: int, suffix: str) -> Path:
    """Where to write the result for ``src``: ``-o`` (a file for one input, a directory for
    several), else beside the input with ``suffix``."""
    if out is None:
        return src.with_suffix(suffix) if src.suffix else src.with_name(src.name + suffix)
    o = Path(out)
    if o.is_dir():
        return o / (src.with_suffix(suffix).name if src.suffix else src.name + suffix)
    if n_inputs > 1:
        raise InputError(f"-o {out} must be an existing directory when giving {n_inputs} inputs.")
    return o


def _refuse_overwrite(path: Path, args: argparse.Namespace, sources: Sequence[Path] = ()) -> None:
    if any(path.resolve() == s.resolve() for s in sources):
        raise InputError(f"{path} is also an input; choose another output with -o.")
    if path.exists() and not getattr(args, "force", False):
        raise InputError(f"{path} exists; pass --force to overwrite it, or choose another -o.")


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Render ``rows`` as an aligned text table; columns are (key, title, format)."""
    cells = [[title for _, title, _ in columns]]
    for r in rows:
        line = []
        for key, _, fmt in columns:
            v = r.get(key, "")
            if isinstance(v, float) and math.isinf(v):
                line.append("inf" if v > 0 else "-inf")
            else:
                line.append(format(v, fmt) if v != "" else "")
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    out = []
    for j, c in enumerate(cells):
        out.append("  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(c, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _print_json(obj: Any) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, dict):
            return {k: clean(u) for k, u in v.items()}
        if isinstance(v, list):
            return [clean(u) for u in v]
        return v

    print(json.dumps(clean(obj), indent=2))


def _number(text: str) -> int | float:
    """An int if the text is one (quality levels), else a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _split_list(text: str, cast: Callable[[str], Any]) -> list[Any]:
    try:
        return [cast(s.strip()) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"cannot read {text!r} as a comma-separated list.") from None


# ----------------------------------------------------------------------------- commands


def cmd_fit(args: argparse.Namespace) -> int:
    from .io import load_tensor
    from ..transform import fit_transform

    out = Path(args.output)
    _refuse_overwrite(out, args)
    arrays = []
    for p in _progress(args.files, args, "reading"):
        arrays.append(_as_f32_numpy(load_tensor(p, key=args.key), p))
    total = sum(a.size for a in arrays)
    samples: Any = arrays[0] if len(arrays) == 1 else arrays  # fit_transform pools a list
    if args.max_values and total > args.max_values:
        if args.channel_axis is not None:
            raise InputError("--max-values subsamples pooled values; it cannot be combined with --channel-axis.")
        rng = np.random.default_rng(0)
        samples = rng.choice(np.concatenate([a.ravel() for a in arrays]), size=args.max_values, replace=False)
        total = args.max_values
    opts: dict[str, Any] = {"bits": args.bits}
    if args.clip:
        opts["clip"] = tuple(args.clip)
    if args.percentiles:
        opts["percentiles"] = tuple(args.percentiles)
    if args.channel_axis is not None:
        opts["channel_axis"] = args.channel_axis
    t0 = time.perf_counter()
    t = fit_transform(samples, **opts)
    dt = time.perf_counter() - t0
    t.save(out)
    _say(args, f"fitted a {t.bits}-bit transform on {total:,} values in {dt:.2f} s")
    print(f"{out}  id={t.id}")
    return EXIT_OK


def _as_f32_numpy(x: Any, src: Any) -> np.ndarray:
    from .._arrays import float_view, to_float32

    try:
        a, origin = float_view(x)
    except InputError as e:
        raise InputError(f"{src}: {e}") from None
    return to_float32(a, origin.dtype)


def cmd_encode(args: argparse.Namespace) -> int:
    from .. import api
    from .io import load_tensor, write_bytes_atomic

    opts = _encode_options(args)
    srcs = [Path(f) for f in args.files]
    total_raw = total_coded = 0
    for src in _progress(srcs, args, "encoding"):
        dst = _out_path(src, args.output, len(srcs), STREAM_SUFFIX)
        _refuse_overwrite(dst, args, srcs)
        x = load_tensor(src, key=args.key)
        try:
            blob = api.encode(x, args.codec, **opts)
        except InputError as e:
            raise InputError(f"{src}: {e}") from None
        write_bytes_atomic(dst, blob)
        raw, n = _raw_nbytes(x), _numel(x)
        total_raw += raw
        total_coded += len(blob)
        print(f"{src} -> {dst}  {raw:,} -> {len(blob):,} bytes  {8 * len(blob) / n:.3f} bits/value")
    if len(srcs) > 1:
        print(f"total  {total_raw:,} -> {total_coded:,} bytes  ({total_raw / max(total_coded, 1):.2f}x smaller)")
    return EXIT_OK


def _read_stream_file(p: Path) -> bytes:
    if not p.exists():
        raise InputError(f"{p}: no such file. Check the path.")
    if p.is_dir():
        raise InputError(f"{p} is a directory; give a .fc stream file.")
    return p.read_bytes()


def cmd_decode(args: argparse.Namespace) -> int:
    from .. import api
    from .io import save_tensor

    transform = _transform_arg(args) if args.transform else None
    if isinstance(transform, str):
        raise InputError("decode --transform takes a transform file (the stream names its transform).")
    srcs = [Path(f) for f in args.files]
    for src in _progress(srcs, args, "decoding"):
        blob = _read_stream_file(src)
        try:
            h = api.header(blob)
            fmt_suffix = "." + (args.format or ("pt" if h["dtype"] == "bfloat16" or h.get("framework") == "torch" else "npy"))
            dst = _out_path(src, args.output, len(srcs), fmt_suffix)
            _refuse_overwrite(dst, args, srcs)
            x = api.decode(blob, transform=transform, dtype=args.dtype)
        except FeatcodecError as e:
            raise type(e)(f"{src}: {e}") from None
        save_tensor(dst, x)
        print(f"{src} -> {dst}  {h['dtype'] if not args.dtype else args.dtype}{tuple(h['shape'])}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .. import api

    infos = []
    for f in args.files:
        p = Path(f)
        blob = _read_stream_file(p)
        try:
            h = api.header(blob)
        except FeatcodecError as e:
            raise type(e)(f"{p}: {e}") from None
        n = math.prod(h["shape"])
        infos.append({"file": str(p), "bytes": len(blob), "bits_per_value": 8 * len(blob) / n, **h})
    if args.json:
        _print_json(infos if len(infos) > 1 else infos[0])
        return EXIT_OK
    for info in infos:
        print(f"{info['file']}: {info['bytes']:,} bytes, {info['bits_per_value']:.3f} bits/value")
        for k, v in info.items():
            if k not in ("file", "bytes", "bits_per_value"):
                print(f"  {k}: {json.dumps(v)}")
    return EXIT_OK


def _measure(x: Any, codec: str, opts: dict[str, Any], repeat: int = 1) -> dict[str, Any]:
    """Encode and decode ``x``; return bytes, bits/value, distortion and best-of-``repeat`` times."""
    from .. import api

    enc_t = dec_t = math.inf
    blob = b""
    y = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        blob = api.encode(x, codec, **opts)
        t1 = time.perf_counter()
        y = api.decode(blob)
        t2 = time.perf_counter()
        enc_t, dec_t = min(enc_t, t1 - t0), min(dec_t, t2 - t1)
    n = _numel(x)
    mb = _raw_nbytes(x) / 1e6
    head = api.header(blob)  # what the stream holds (codec="auto" chose it)
    label = head["codec"]
    if "quality" in head["codec_params"]:
        label += f" q{head['codec_params']['quality']}"
    return {
        "codec": label if codec != "auto" else f"auto: {label}",
        "bits": head["bits"],
        "values": n,
        "raw_bytes": _raw_nbytes(x),
        "bytes": len(blob),
        "bits_per_value": 8 * len(blob) / n,
        **distortion(x, y),
        "encode_s": enc_t,
        "decode_s": dec_t,
        "encode_MBps": mb / enc_t if enc_t > 0 else math.inf,
        "decode_MBps": mb / dec_t if dec_t > 0 else math.inf,
    }


_EVAL_COLUMNS = [
    ("file", "file", ""),
    ("codec", "codec", ""),
    ("bits", "bits", ""),
    ("bytes", "bytes", ",d"),
    ("bits_per_value", "bits/value", ".3f"),
    ("mse", "MSE", ".3e"),
    ("psnr", "PSNR dB", ".2f"),
    ("max_abs", "max |err|", ".3g"),
]


def _codec_grid(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """Every (codec, encode options) pair of the comma lists --codec and --bits; unknown
    codec names surface from encode as UnknownCodecError, which lists the known ones."""
    codecs = _split_list(args.codec, str)
    bits_list = _split_list(args.bits, int) if args.bits else [None]
    grid = []
    base = _encode_options(argparse.Namespace(**{**vars(args), "bits": None}))
    for c in codecs:
        if c == "auto":  # chooses its own bits
            grid.append((c, dict(base)))
            continue
        for b in bits_list:
            opts = dict(base)
            if b is not None:
                if not isinstance(opts.get("transform"), str):  # a fitted transform fixes bits
                    raise InputError("--bits lists and --transform FILE exclude each other: the file fixes the bits.")
                opts["bits"] = b
            grid.append((c, opts))
    return grid


def cmd_eval(args: argparse.Namespace) -> int:
    from .io import load_tensor

    grid = _codec_grid(args)
    rows = []
    jobs = [(f, c, o) for f in args.files for c, o in grid]
    cache: dict[str, Any] = {}
    for f, codec, opts in _progress(jobs, args, "evaluating", total=len(jobs)):
        if f not in cache:
            cache.clear()
            cache[f] = load_tensor(f, key=args.key)
        try:
            r = _measure(cache[f], codec, opts)
        except InputError as e:
            raise InputError(f"{f}: {e}") from None
        rows.append({"file": f, **r})
    if args.json:
        _print_json(rows)
    else:
        print(_table(rows, _EVAL_COLUMNS))
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from .io import load_tensor

    grid = _codec_grid(args)
    if args.files:
        tensors = [(f, load_tensor(f, key=args.key)) for f in args.files]
    else:
        tensors = _demo_tensors()
    rows = []
    jobs = [(name, x, c, o) for name, x in tensors for c, o in grid]
    for name, x, codec, opts in _progress(jobs, args, "benchmarking", total=len(jobs)):
        rows.append({"file": name, **_measure(x, codec, opts, repeat=args.repeat)})
    if args.json:
        _print_json(rows)
    else:
        print(_table(rows, [
            ("file", "input", ""), ("codec", "codec", ""), ("bits", "bits", ""),
            ("raw_bytes", "raw bytes", ",d"), ("bits_per_value", "bits/value", ".3f"),
            ("encode_MBps", "encode MB/s", ".1f"), ("decode_MBps", "decode MB/s", ".1f"),
        ]))
        print(f"(best of {args.repeat}; MB/s of raw input bytes; threads: {_threads()})")
    return EXIT_OK


def _threads() -> str:
    try:
        from ..threads import get_num_threads

        return str(get_num_threads())
    except Exception:
        return "default"


def _demo_tensors() -> list[tuple[str, np.ndarray]]:
    """``(name, array)`` pairs of the bundled demo features (``family/tap``)."""
    try:
        from ..datasets import load_demo
    except ImportError as e:
        raise MissingPart(f"the demo data module is missing from this install ({e}).") from None
    try:
        demo = load_demo()
    except (OSError, ValueError) as e:
        raise MissingPart(f"the bundled demo data cannot be read ({e}); reinstall featcodec.") from None
    if not demo:
        raise MissingPart("the bundled demo data is empty; reinstall featcodec.")
    return sorted(demo.items())


_TRANSFORM_KINDS = {"lloyd-max": "fit_transform", "uniform": "fit_uniform"}


def cmd_demo(args: argparse.Namespace) -> int:
    """For each bundled real feature: fit a transform, encode, decode, measure."""
    from .. import transform as transform_mod

    t_start = time.perf_counter()
    kinds = _split_list(args.transforms, str)
    for k in kinds:
        if k not in _TRANSFORM_KINDS:
            raise InputError(f"--transforms: unknown kind {k!r}; choose from {', '.join(_TRANSFORM_KINDS)}.")
    feats = _demo_tensors()
    rows = []
    jobs = [(name, x, k) for name, x in feats for k in kinds]
    for name, x, kind in _progress(jobs, args, "demo", total=len(jobs)):
        fit = getattr(transform_mod, _TRANSFORM_KINDS[kind])
        t0 = time.perf_counter()
        t = fit(x, bits=args.bits)
        fit_s = time.perf_counter() - t0
        m = _measure(x, args.codec, {"transform": t}, repeat=2)
        rows.append({
            "family": name.split("/")[0],
            "feature": name,
            "shape": "x".join(map(str, x.shape)),
            "transform": kind,
            **m,
            "ratio": m["raw_bytes"] / m["bytes"],
            "fit_ms": 1e3 * fit_s,
        })
    elapsed = time.perf_counter() - t_start
    if args.json:
        _print_json({"bits": args.bits, "codec": args.codec, "seconds": elapsed, "rows": rows})
        return EXIT_OK
    print(f"featcodec demo: real features bundled with featcodec; a {args.bits}-bit transform "
          f"fitted to each, then encode -> decode with codec {args.codec!r}")
    print(_table(rows, [
        ("feature", "feature", ""), ("shape", "shape", ""), ("transform", "transform", ""),
        ("raw_bytes", "raw bytes", ",d"), ("bytes", "coded bytes", ",d"),
        ("bits_per_value", "bits/value", ".3f"), ("ratio", "ratio", ".2f"),
        ("mse", "MSE", ".3e"), ("psnr", "PSNR dB", ".2f"), ("fit_ms", "fit ms", ".1f"),
        ("encode_MBps", "enc MB/s", ".1f"), ("decode_MBps", "dec MB/s", ".1f"),
    ]))
    print(f"Streams are self-contained (they carry the transform's levels). PSNR peak = value range "
          f"of the original. MB/s of float32 input, best of 2. Done in {elapsed:.1f} s.")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser


def _add_codec_options(p: argparse.ArgumentParser, *, many: bool) -> None:
    if many:
        p.add_argument("--codec", default="index", help="codec name(s), comma-separated (default: index)")
        p.add_argument("--bits", default=None, help="transform bits, comma-separated, e.g. 4,6,8 (default: 8)")
    else:
        p.add_argument("--codec", default="index", help="codec name (default: index; see `featcodec --codecs`)")
        p.add_argument("--bits", type=int, default=None, help="transform bits, 1-16 (default: 8)")
    p.add_argument("--transform", default="auto", metavar="auto|uniform|FILE",
                   help="auto: fit per tensor (default); uniform: min-max uniform levels; "
                        "FILE: a transform from `featcodec fit`")
    p.add_argument("--quality", type=_number, default=None,
                   help="quality of learned codecs (an int level, or a number where the codec takes one)")
    p.add_argument("--target-bpfp", type=float, default=None, dest="target_bpfp",
                   help="target bits per feature value (learned codecs)")
    p.add_argument("--max-error", type=float, default=None, dest="max_error",
                   help="error-bounded coding (index codec): every decoded value within this "
                        "absolute error; picks the transform and bits itself, and sends the few "
                        "massive values 16-bit indices cannot span at this bound exactly")
    p.add_argument("--outliers", type=int, default=None, metavar="K",
                   help="send the K values of largest magnitude exactly and code the rest without them")
    p.add_argument("--rotation", action="store_true",
                   help="a seeded randomised Hadamard rotation along the last axis first (spreads outlier channels)")
    p.add_argument("--scales", default=None, choices=("token", "channel"),
                   help="per-token or per-channel scales first (token layouts: LLM states, KV caches, ViT tokens)")
    p.add_argument("--spatial", type=int, default=None, metavar="B",
                   help="blockwise B x B Walsh-Hadamard coefficients of an (N, C, H, W) map, or of the patch "
                        "grid of ViT tokens (N, T, C), first (B a power of two dividing H and W)")
    from ..stages.alignment import LAYOUTS

    p.add_argument("--layout", default=None, choices=("auto", *LAYOUTS),
                   help="how the tensor is packed into a 2-D plane (default: auto, chosen from the shape)")
    p.add_argument("--no-embed", action="store_true",
                   help="store only the transform's id, not its levels (decoders need the transform file)")
    p.add_argument("--key", default=None, help="tensor name inside .pt/.safetensors files holding several")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``featcodec`` command (without ``train``, which is
    forwarded to :func:`featcodec.codecs.learned.train.main`)."""
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="featcodec",
        description="Compress neural-network features (DT-UFC / CAUFC universal feature codec).",
        epilog="Exit status: 0 ok, 1 bad input/stream/file, 2 bad command line, 3 optional part "
               "missing, 130 interrupted. `featcodec COMMAND --help` describes each command.",
    )
    p.add_argument("--version", action="version", version=f"featcodec {__version__}")
    p.add_argument("--codecs", action="store_true", help="list the available codecs and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes on stderr")

    d = sub.add_parser("demo", parents=[common], help="fit, encode and decode the bundled real features; print a table",
                       description="For each real feature bundled with featcodec (CNN, ViT, LLM, latent): "
                                   "fit a transform, encode, decode, and print bytes, bits per value, "
                                   "MSE/PSNR and speed, for the peaky-to-balanced (Lloyd-Max) transform "
                                   "and the uniform baseline.")
    d.add_argument("--bits", type=int, default=8, help="transform bits (default: 8)")
    d.add_argument("--codec", default="index", help="codec name (default: index)")
    d.add_argument("--transforms", default="lloyd-max,uniform",
                   help="transform kinds to compare, comma-separated (default: lloyd-max,uniform)")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("fit", parents=[common], help="fit a transform to sample feature files",
                       description="Fit the peaky-to-balanced (Lloyd-Max) transform to the values of "
                                   "one or more tensor files and save it as JSON.")
    f.add_argument("files", nargs="+", help="tensor files (.npy, .pt, .safetensors)")
    f.add_argument("-o", "--output", required=True, help="transform file to write (.json)")
    f.add_argument("--bits", type=int, default=8, help="bits, 1-16: 2**bits levels (default: 8)")
    f.add_argument("--clip", type=float, nargs=2, metavar=("LO", "HI"), help="clip values to [LO, HI] first")
    f.add_argument("--percentiles", type=float, nargs=2, metavar=("LO", "HI"),
                   help="clip to these percentiles of the samples first, e.g. 0.01 99.99")
    f.add_argument("--channel-axis", type=int, default=None, help="fit one transform per channel along this axis")
    f.add_argument("--max-values", type=int, default=None, help="fit on a seeded random subset of this many values")
    f.add_argument("--key", default=None, help="tensor name inside .pt/.safetensors files holding several")
    f.add_argument("--force", action="store_true", help="overwrite the output")
    f.set_defaults(func=cmd_fit)

    e = sub.add_parser("encode", parents=[common], help="compress tensor files to .fc streams",
                       description="Compress tensor files to featcodec streams (.fc).")
    e.add_argument("files", nargs="+", help="tensor files (.npy, .pt, .safetensors)")
    e.add_argument("-o", "--output", help="output file (one input) or directory (default: beside the input, .fc)")
    _add_codec_options(e, many=False)
    e.add_argument("--force", action="store_true", help="overwrite existing outputs")
    e.set_defaults(func=cmd_encode)

    dd = sub.add_parser("decode", parents=[common], help="decompress .fc streams to tensor files",
                        description="Decompress featcodec streams to tensor files.")
    dd.add_argument("files", nargs="+", help=".fc stream files")
    dd.add_argument("-o", "--output", help="output file (one input) or directory "
                                           "(default: beside the input, .npy, or .pt for torch tensors)")
    dd.add_argument("--format", choices=("npy", "pt", "safetensors"), help="output format when -o is not a file name")
    dd.add_argument("--transform", default=None, metavar="FILE",
                    help="transform file, for streams that store only its id")
    dd.add_argument("--dtype", choices=("float16", "bfloat16", "float32", "float64"), help="output dtype (default: as encoded)")
    dd.add_argument("--force", action="store_true", help="overwrite existing outputs")
    dd.set_defaults(func=cmd_decode)

    i = sub.add_parser("info", parents=[common], help="print the header of .fc streams",
                       description="Print a stream's header: codec, shape, dtype, transform, packing.")
    i.add_argument("files", nargs="+", help=".fc stream files")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    ev = sub.add_parser("eval", parents=[common], help="rate and distortion of codecs on tensor files",
                        description="Encode and decode each file with each codec and bits setting; "
                                    "report bytes, bits per value, MSE, PSNR (peak = value range) and max error.")
    ev.add_argument("files", nargs="+", help="tensor files")
    _add_codec_options(ev, many=True)
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", parents=[common], help="encode/decode speed on tensor files (or the demo data)",
                       description="Time encode and decode (best of --repeat) on tensor files, or on the "
                                   "bundled demo features when no file is given.")
    b.add_argument("files", nargs="*", help="tensor files (default: the demo test features)")
    _add_codec_options(b, many=True)
    b.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts (default: 3)")
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=cmd_bench)

    sub.add_parser("train", help="train a learned codec (`featcodec train --help`)", add_help=False)
    return p


def _run_train(argv: list[str]) -> int:
    try:
        from ..codecs.learned.train import main as train_main
    except ImportError as e:
        raise MissingPart(f"the learned-codec trainer is not available in this install ({e}).") from None
    rc = train_main(argv)
    return int(rc or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``featcodec`` command; returns the exit status (see module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "train":
            return _run_train(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.codecs:
            from .. import available_codecs

            print("\n".join(available_codecs()))
            return EXIT_OK
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if hasattr(args, "repeat") and args.repeat < 1:
            parser.error("--repeat must be at least 1")
        return int(args.func(args) or 0)
    except SystemExit as e:  # argparse: --help/--version (0) and usage errors (2)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("featcodec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MissingPart as e:
        print(f"featcodec: {e}", file=sys.stderr)
        return EXIT_MISSING
    except FeatcodecError as e:
        print(f"featcodec: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"featcodec: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
