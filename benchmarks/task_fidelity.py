"""Task fidelity of featcodec on the real corpus (GitHub issue 4).

For each family's tap, each held-out TEST input and each rate setting, the tapped feature is
compressed with featcodec, decoded, fed into the rest of the model
(``model.rest(tap, decoded)``), and the task output is compared with the output of the
uncompressed feature:

==========  ==========  ==========================================================
family      tap         task metric (vs the uncompressed feature's output)
==========  ==========  ==========================================================
llm         hidden15    next-token argmax agreement over all positions; top-1 of
                        the last position
vit         layer9      CLS-embedding cosine; saliency-map PSNR (peak 1) and Pearson
                        correlation
cnn         features13  ImageNet top-1 agreement with the uncut model
latent      latent256   decoded-image PSNR vs the decode of the uncompressed latent
                        (peak 1); also PSNR of both decodes vs the source image
==========  ==========  ==========================================================

Rate settings (``index`` codec, bits 1..8):

- ``auto``: Lloyd-Max (DT-UFC) fitted on the tensor itself, levels embedded in the stream;
- ``uniform``: uniform levels over the tensor's min..max (CAUFC value alignment, no
  truncation), embedded;
- ``trained``: Lloyd-Max fitted once on the first ``--n-train`` TRAIN features of the tap
  (the papers' setting), registered, only its id in the stream;
- ``trained-clip``: the same with truncation at the train percentiles 0.1 / 99.9;
- ``trained-uniform-clip``: uniform over the train percentiles 0.1 / 99.9 (CAUFC's fixed
  truncation range), id only;
- ``trained-ch``: per-channel Lloyd-Max from the train features (channel axis of the
  family), id only;
- ``auto-ch`` (llm only): per-channel Lloyd-Max fitted on the tensor, embedded;
- ``max-error``: error-bounded coding, ``encode(x, max_error=robust_scale(x) * 2**-k)``
  for k = -2..5 (k in the ``bits`` column); uniform levels, embedded as their two ends;
- ``spatial`` (channels-first maps whose H and W 8 or 4 divides): the same uniform steps
  on the ``"spatial"`` stage's blockwise Walsh-Hadamard coefficients (the bound holds on
  the coefficients), as ``codec="auto"`` runs them;
  ``spatial-B`` (B in ``SPATIAL_BLOCKS``): the same with blocks of B instead of
  ``block_for``'s;
- ``outliers-K`` (K in ``OUTLIER_KS``): dense + sparse, ``encode(x, bits=b, outliers=K)``:
  the K values of largest magnitude travel exactly, the rest is coded like ``auto``;
- ``scales-token`` / ``scales-channel``: ``encode(x, bits=b, scales="token" |
  "channel")``, featcodec's per-token / per-channel scales stage (docs/scales_rotation.md)
  before the ``auto`` Lloyd-Max transform;
- ``rotation``: ``encode(x, bits=b, rotation=True)``, the seeded randomised Hadamard
  rotation along the hidden axis before the ``auto`` Lloyd-Max transform;
- these three work along the last axis: CNN maps and latents (channels first) are moved
  channels last for them (a "token" is then a pixel) and back after decoding;
- ``kivi-channel-G`` / ``kivi-token-G`` (G in ``KIVI_GROUPS``; llm only; default bits
  ``KIVI_BITS``): not featcodec but the KIVI-style baseline of benchmarks/kivi_baseline.py
  on the tapped (tokens x channels) tensor: asymmetric uniform ``b``-bit levels with a
  float16 zero point and scale per group of G tokens of one channel (KIVI's keys) or of G
  channels of one token (KIVI's values), G capped at the axis; the rate is the uint8
  indices compressed with zstd-19 (``payload_bytes``) plus 4 bytes a group
  (``stream_bytes`` = both; no header), the reconstruction float32;
- ``hyperprior`` and ``elic`` at their qualities, on the 8-bit ``trained`` transform (id
  only), when that codec is available.

Rows go to a CSV as they are measured (``--out``); rerunning resumes (rows already present
are skipped). ``report`` turns the CSV into docs/fidelity.md tables and the plot: every
metric with its 95% bootstrap interval over inputs (benchmarks/fidelity_stats.py; the LLM
resamples whole sequences), and a setting counts as within 1% of uncompressed only when
every criterion's lower bound reaches 0.99 (:func:`criteria`).

Usage (the commands of the 2026-12-07 run: docs/fidelity.md)::

    PYTHONPATH=$PWD nohup nice -n 10 python benchmarks/task_fidelity.py run --families llm cnn &
    PYTHONPATH=$PWD python benchmarks/task_fidelity.py run --families llm --n-inputs 256 \
        --settings max-error:0,1 auto:3,4 outliers-64:2,3 --out benchmarks/results/task_fidelity_ci.csv
    PYTHONPATH=$PWD python benchmarks/task_fidelity.py report
    PYTHONPATH=$PWD python benchmarks/task_fidelity.py compare-kivi \
        --csv benchmarks/results/task_fidelity_kivi.csv.gz      # KIVI-style vs featcodec (llm)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _load_sibling(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` by path. The benchmarks folder itself must not be on
    ``sys.path``: its ``kernels.py`` would shadow the ``kernels`` package that transformers
    imports when it loads SmolLM2 (``python benchmarks/task_fidelity.py`` puts it first)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_featcodec_bench_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
_stats = _load_sibling("fidelity_stats")
_kivi = _load_sibling("kivi_baseline")
N_BOOT, SEED, bootstrap_ratio, clopper_pearson = _stats.N_BOOT, _stats.SEED, _stats.bootstrap_ratio, _stats.clopper_pearson

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("FEATCODEC_CORPUS", "/work/corpus"))
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "task_fidelity.csv"

TAPS = {"llm": "hidden15", "vit": "layer9", "cnn": "features13", "latent": "latent256"}
CHANNEL_AXIS = {"llm": -1, "vit": -1, "cnn": 1, "latent": 1}
BITS = tuple(range(1, 9))
#: ``outliers-K`` settings: K values of largest magnitude sent exactly (featcodec.stages.outliers)
OUTLIER_KS = (8, 64)
OUTLIER_SETTINGS = tuple(f"outliers-{k}" for k in OUTLIER_KS)
#: featcodec's per-token / per-channel scales stage (token-layout families only)
SCALES_SETTINGS = ("scales-token", "scales-channel")
#: token-layout stages without a parameter of their own: ``rotation``
TOKEN_SETTINGS = SCALES_SETTINGS + ("rotation",)
#: KIVI-style baselines (benchmarks/kivi_baseline.py), llm only: group sizes and default bits
KIVI_GROUPS = (32, 64, 128)
KIVI_BITS = (2, 3, 4)
KIVI_SETTINGS = tuple(f"kivi-{per}-{g}" for per in ("channel", "token") for g in KIVI_GROUPS)
#: ``spatial-B`` settings: the spatial stage with blocks of B (``spatial``: block_for's)
SPATIAL_BLOCKS = (2, 4, 8)
SPATIAL_SETTINGS = ("spatial",) + tuple(f"spatial-{b}" for b in SPATIAL_BLOCKS)
SETTINGS = ("auto", "uniform", "trained", "trained-clip", "trained-uniform-clip", "trained-ch", "auto-ch",
            "max-error") + SPATIAL_SETTINGS + OUTLIER_SETTINGS + TOKEN_SETTINGS + KIVI_SETTINGS
#: ``max-error`` rows: bound = the tensor's robust scale * 2**-k for these k (in the bits column)
BOUND_KS = tuple(range(-2, 6))
LEARNED = ("hyperprior", "elic")  # learned codecs, at each shipped quality
CLIP_PERCENTILES = (0.1, 99.9)
FIELDS = ["family", "tap", "input_id", "setting", "codec", "bits", "quality", "numel",
          "stream_bytes", "payload_bytes", "bpfp", "mse", "metric", "metric2", "metric3",
          "error", "seconds"]
#: name of metric / metric2 / metric3 per family
METRIC_NAMES = {
    "llm": ("next-token agreement (all positions)", "last-token top-1 agreement", "-"),
    "vit": ("CLS cosine", "saliency PSNR (dB)", "saliency correlation"),
    "cnn": ("top-1 agreement with uncut model", "top-1 prob. of the reference class", "-"),
    "latent": ("PSNR vs uncompressed decode (dB)", "PSNR vs source image (dB)",
               "uncompressed decode's PSNR vs source image (dB)"),
}


# ----------------------------------------------------------------------------- metrics
def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64) if hasattr(t, "detach") else np.asarray(t, np.float64)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    m = float(np.mean((a - b) ** 2))
    return math.inf if m == 0 else 10 * math.log10(peak * peak / m)


class Task:
    """The reference output of one input and the metrics of a decoded feature against it."""

    def __init__(self, family: str, model: Any, tap: str, input_id: int, x: np.ndarray) -> None:
        self.family, self.model, self.tap, self.input_id = family, model, tap, input_id
        self.ref = model.rest(tap, x)
        if family == "latent":
            self.src = _np(model.image_tensor(input_id, model.sizes[tap]))
        if family == "cnn":
            self.full_top1 = int(_np(model.full(input_id, tap)).argmax())

    def metrics(self, y: np.ndarray) -> tuple[float, float, float]:
        out = self.model.rest(self.tap, y)
        f = self.family
        if f == "llm":
            a, b = _np(out)[0].argmax(-1), _np(self.ref)[0].argmax(-1)
            return float(np.mean(a == b)), float(a[-1] == b[-1]), math.nan
        if f == "vit":
            c, r = _np(out["cls"]).ravel(), _np(self.ref["cls"]).ravel()
            cos = float(c @ r / (np.linalg.norm(c) * np.linalg.norm(r)))
            s, sr = _np(out["saliency"]).ravel(), _np(self.ref["saliency"]).ravel()
            corr = float(np.corrcoef(s, sr)[0, 1]) if s.std() > 0 else math.nan
            return cos, _psnr(s, sr), corr
        if f == "cnn":
            lo = _np(out)[0]
            p = np.exp(lo - lo.max())
            p /= p.sum()
            return float(lo.argmax() == self.full_top1), float(p[self.full_top1]), math.nan
        if f == "latent":
            img = np.clip(_np(out), 0, 1)
            ref = np.clip(_np(self.ref), 0, 1)
            return _psnr(img, ref), _psnr(img, self.src), _psnr(ref, self.src)
        raise ValueError(f)


# ----------------------------------------------------------------------------- settings
def train_features(family: str, tap: str, n: int) -> list[np.ndarray]:
    from featcodec.features.extract import load_manifest

    es = sorted(load_manifest(CORPUS, family=family, tap=tap, split="train"), key=lambda e: e["input_id"])
    return [np.load(e["path"]) for e in es[:n]]


class Encoders:
    """Builds the encode function of each (setting, bits), fitting trained transforms lazily."""

    def __init__(self, family: str, tap: str, n_train: int) -> None:
        self.family, self.tap, self.n_train = family, tap, n_train
        self._train: list[np.ndarray] | None = None
        self._fits: dict[tuple[str, int], Any] = {}

    def train(self) -> list[np.ndarray]:
        if self._train is None:
            self._train = train_features(self.family, self.tap, self.n_train)
        return self._train

    def fitted(self, setting: str, bits: int) -> Any:
        import featcodec

        key = (setting, bits)
        if key not in self._fits:
            tr = self.train()
            if setting == "trained":
                t = featcodec.fit_transform(tr, bits=bits)
            elif setting == "trained-clip":
                t = featcodec.fit_transform(tr, bits=bits, percentiles=CLIP_PERCENTILES)
            elif setting == "trained-uniform-clip":
                t = featcodec.fit_uniform(tr, bits=bits, percentiles=CLIP_PERCENTILES)
            elif setting == "trained-ch":
                t = featcodec.fit_transform(tr, bits=bits, channel_axis=CHANNEL_AXIS[self.family])
            else:
                raise ValueError(setting)
            featcodec.register_transform(t)
            self._fits[key] = t
        return self._fits[key]

    def codec(self, setting: str, bits: int, quality: Any = None) -> Callable[[np.ndarray], tuple[int, int, np.ndarray]]:
        """``x -> (stream_bytes, payload_bytes, decoded)`` of a setting: featcodec's whole
        stream and its first section, or a KIVI-style baseline's counted bytes."""
        if setting in KIVI_SETTINGS:
            _, per, group = setting.split("-")
            return lambda x: (lambda p, q, y: (p + q, p, y))(*_kivi.kivi_quantize(x, bits, int(group), per))
        import featcodec
        from featcodec.stream.container import read_stream

        encode = self.encoder(setting, bits, quality)
        # the token-layout stages work along the last axis: channels-first maps (CNN,
        # latent) go channels last for them and come back after decoding
        last = setting in TOKEN_SETTINGS and CHANNEL_AXIS[self.family] == 1

        def run(x: np.ndarray) -> tuple[int, int, np.ndarray]:
            blob = encode(np.ascontiguousarray(np.moveaxis(x, 1, -1)) if last else x)
            y = featcodec.decode(blob)
            return len(blob), len(read_stream(blob).sections[0]), np.moveaxis(y, -1, 1) if last else y

        return run

    def encoder(self, setting: str, bits: int, quality: Any = None) -> Callable[[np.ndarray], bytes]:
        import featcodec

        if setting == "auto":
            return lambda x: featcodec.encode(x, bits=bits)
        if setting == "uniform":
            return lambda x: featcodec.encode(x, bits=bits, transform="uniform")
        if setting == "max-error":
            from featcodec.metrics import robust_scale

            return lambda x: featcodec.encode(x, max_error=robust_scale(x) * 2.0**-bits)
        if setting in SPATIAL_SETTINGS:  # uniform steps on the blockwise Hadamard coefficients, as codec="auto" runs them
            from featcodec.metrics import robust_scale
            from featcodec.stages.spatial import COEFFICIENT_BOUND, block_for

            block = int(setting.split("-")[1]) if "-" in setting else None
            return lambda x: featcodec.pipeline.encode(
                x, "index", {"max_error": robust_scale(x) * 2.0**-bits, "spatial": block or block_for(x.shape),
                             COEFFICIENT_BOUND: True}, None, ["spatial", "transform", "pack"])
        if setting in OUTLIER_SETTINGS:
            k = int(setting.split("-")[1])
            return lambda x: featcodec.encode(x, bits=bits, outliers=k)
        if setting in SCALES_SETTINGS:
            per = setting.split("-")[1]
            return lambda x: featcodec.encode(x, bits=bits, scales=per)
        if setting == "rotation":
            return lambda x: featcodec.encode(x, bits=bits, rotation=True)
        if setting == "auto-ch":
            ax = CHANNEL_AXIS[self.family]
            return lambda x: featcodec.encode(x, transform=featcodec.fit_transform(x, bits=bits, channel_axis=ax))
        if setting in LEARNED:  # the papers' setting: the 8-bit transform fitted on train
            t = self.fitted("trained", 8)
            return lambda x: featcodec.encode(x, setting, transform=t, quality=quality,
                                              embed_transform=False)
        t = self.fitted(setting, bits)
        return lambda x: featcodec.encode(x, transform=t, embed_transform=False)


def settings_for(family: str, names: list[str], bits: list[int] | None = None) -> list[tuple[str, str, int, Any]]:
    """(setting, codec, bits, quality) to run.

    A name may carry its own bits, ``"auto:1,2,3"`` (for ``max-error`` the bound exponents
    k, which may be fractional: ``"max-error:-1,0,1.5"``), run as given; otherwise ``bits``
    (default: all) restricts the index settings' bits / k to those values.

    >>> settings_for("cnn", ["auto:2", "max-error:-1,0"])[:2]
    [('auto', 'index', 2, ''), ('max-error', 'index', -1, '')]
    """
    import featcodec

    out = []
    for spec in names:
        s, _, own = spec.partition(":")
        if (s == "auto-ch" or s in KIVI_SETTINGS) and family != "llm":
            continue
        if s in LEARNED:
            continue
        if own:
            out += [(s, "kivi" if s in KIVI_SETTINGS else "index", _number(v), "") for v in own.split(",")]
        else:
            default = BOUND_KS if s == "max-error" or s in SPATIAL_SETTINGS else KIVI_BITS if s in KIVI_SETTINGS else BITS
            out += [(s, "kivi" if s in KIVI_SETTINGS else "index", b, "") for b in default
                    if bits is None or b in bits]
    for c in LEARNED:
        if c in names and c in featcodec.available_codecs():
            out += [(c, c, 0, q) for q in learned_qualities(c)]
    return out


def _number(text: str) -> int | float:
    """``"2"`` -> 2, ``"1.5"`` -> 1.5 (bits are integers, bound exponents need not be)."""
    v = float(text)
    return int(v) if v.is_integer() else v


def learned_qualities(codec: str) -> list[int]:
    from featcodec.codecs.learned.codec import available_qualities

    return available_qualities(codec)


# ----------------------------------------------------------------------------- run
def done_keys(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    with open(path, newline="") as f:
        return {(r["family"], r["input_id"], r["setting"], r["bits"], r["quality"]) for r in csv.DictReader(f)}


def run(args: argparse.Namespace) -> None:
    import torch

    import featcodec
    from featcodec.features.extract import load_manifest
    from featcodec.features.models import load_model

    torch.set_num_threads(args.threads)
    featcodec.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(out)
    new = not out.is_file()
    fh = open(out, "a", newline="")
    w = csv.DictWriter(fh, FIELDS)
    if new:
        w.writeheader()
        fh.flush()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    for family in args.families:
        tap = TAPS[family]
        entries = sorted(load_manifest(CORPUS, family=family, tap=tap, split="test"), key=lambda e: e["input_id"])
        entries = entries[: args.n_inputs]
        todo = settings_for(family, args.settings, args.bits)
        work = [(e, s) for e in entries for s in todo
                if (family, str(int(e["input_id"])), s[0], str(s[2]), str(s[3])) not in done]
        if not work:
            continue
        model = load_model(family)
        enc = Encoders(family, tap, args.n_train)
        bar = tqdm(total=len(work), desc=family, file=sys.stderr, mininterval=5) if tqdm else None
        task_cache: dict[int, tuple[np.ndarray, Task]] = {}
        for e, (setting, codec, bits, quality) in work:
            iid = int(e["input_id"])
            if iid not in task_cache:
                task_cache.clear()
                x = np.load(e["path"])
                task_cache[iid] = (x, Task(family, model, tap, iid, x))
            x, task = task_cache[iid]
            row = {"family": family, "tap": tap, "input_id": iid, "setting": setting, "codec": codec,
                   "bits": bits, "quality": quality, "numel": x.size, "error": ""}
            t0 = time.perf_counter()
            try:
                nbytes, payload, y = enc.codec(setting, bits, quality)(x)
                if y.shape != x.shape:
                    raise RuntimeError(f"decoded shape {y.shape} != {x.shape}")
                m1, m2, m3 = task.metrics(y)
                row.update(stream_bytes=nbytes, payload_bytes=payload, bpfp=nbytes * 8 / x.size,
                           mse=float(np.mean((y.astype(np.float64) - x) ** 2)), metric=m1, metric2=m2, metric3=m3)
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            row["seconds"] = round(time.perf_counter() - t0, 3)
            w.writerow(row)
            fh.flush()
            if bar:
                bar.update(1)
        if bar:
            bar.close()
    fh.close()


# ----------------------------------------------------------------------------- report
def load_rows(path: Path) -> list[dict]:
    """The rows of a results CSV (``.csv`` or gzipped ``.csv.gz``), numbers parsed."""
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("bpfp", "mse", "metric", "metric2", "metric3"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
    return rows


def _finite(v: np.ndarray) -> np.ndarray:
    return v[np.isfinite(v)]


def summarize(rows: list[dict], ref: dict | None = None) -> dict:
    """{family: {(setting, bits, quality): summary}} of the rows without errors.

    A summary holds ``n`` (inputs), ``bpfp`` (whole streams: all bits / all values),
    ``mse`` and, as :class:`fidelity_stats.Interval` (estimate and 95% bootstrap interval
    over inputs), ``metric``, ``metric2``, ``metric3`` and ``crit``: the criterion metrics
    ``[(name, interval), ...]`` of :func:`criteria`. ``ok``: every criterion's lower bound
    is at least ``1 - TOLERANCE``.
    """
    ref = ref or {}
    groups: dict = {}
    seen: set = set()
    for r in rows:
        k = (r["family"], r["input_id"], r["setting"], r["bits"], r["quality"])
        if r["error"] or k in seen:  # errors are listed separately; duplicates counted once
            continue
        seen.add(k)
        groups.setdefault(r["family"], {}).setdefault((r["setting"], r["bits"], r["quality"]), []).append(r)
    out: dict = {}
    for fam, g in groups.items():
        out[fam] = {}
        for key, rs in g.items():
            col = {k: np.array([r[k] for r in rs], np.float64) for k in ("bpfp", "mse", "metric", "metric2", "metric3")}
            numel = np.array([int(r["numel"]) for r in rs], np.float64)
            col["input_id"] = np.array([int(r["input_id"]) for r in rs])
            s: dict = {"n": len(rs), "bpfp": float(np.sum(col["bpfp"] * numel) / numel.sum()),
                       "mse": float(np.mean(col["mse"]))}
            for k in ("metric", "metric2", "metric3"):
                s[k] = bootstrap_ratio(_finite(col[k]))
            if fam == "llm":  # agreeing positions / positions, resampling whole sequences
                T = numel / 576
                s["metric"] = bootstrap_ratio(np.round(col["metric"] * T), T)
            s["crit"] = criteria(fam, col, s, ref)
            s["ok"] = all(iv.low >= 1 - TOLERANCE for _, iv in s["crit"])
            out[fam][key] = s
    return out


#: "within 1% of uncompressed": every criterion's lower 95% bound >= 1 - TOLERANCE
TOLERANCE = 0.01
#: the report's compact all-family table lists the rows up to this rate
COMPACT_BPFP = 2.6
#: the metrics shown (with their intervals) beside the criteria in the report's tables
DISPLAY = {"llm": ("metric2",), "vit": ("metric2",), "cnn": ("metric2",), "latent": ("metric", "metric2")}


def criteria(family: str, col: dict, s: dict, ref: dict) -> list[tuple[str, Any]]:
    """The criterion metrics of ``family``, each relative to the uncompressed feature's own
    value (1 for agreements and cosines / correlations of an output with itself):

    - llm: next-token agreement over all positions (bootstrap over sequences);
    - vit: CLS cosine and saliency correlation;
    - cnn: top-1 agreement with the uncut model;
    - latent: ``sum(PSNR(decode(compressed), source)) / sum(PSNR(decode(uncompressed),
      source))`` over inputs, paired (rows from runs before ``metric3`` recorded the
      uncompressed decode's PSNR take it from ``--reference``'s per-input list, which holds
      the first test inputs in id order).
    """
    if family == "llm":
        return [("next-token agreement", s["metric"])]
    if family == "vit":
        return [("CLS cosine", s["metric"]), ("saliency corr.", s["metric3"])]
    if family == "cnn":
        return [("top-1 agreement", s["metric"])]
    if family == "latent":
        per_input = dict(enumerate(ref.get("latent_src_psnr_per_input", []), start=200_000))
        den = np.array([d if math.isfinite(d) else per_input.get(int(i), math.nan)
                        for d, i in zip(col["metric3"], col["input_id"])])
        return [("PSNR(src) / uncompressed", bootstrap_ratio(col["metric2"], den))]
    raise ValueError(family)


def _key_label(key: tuple) -> str:
    return str(key[2]) if key[0] in LEARNED else str(key[1])


def _lowest(pts: list[tuple[float, tuple, bool]]) -> tuple[Any, Any]:
    """(stable, first) of (bpfp, key, ok) points: the lowest rate from which every higher
    rate also meets the criterion, and the lowest that meets it at all (None: never)."""
    pts = sorted(pts)
    stable = next((p for i, p in enumerate(pts) if all(q[2] for q in pts[i:])), None)
    return stable, next((p for p in pts if p[2]), None)


def report(args: argparse.Namespace) -> None:
    """Tables (Markdown, to ``--tables``) with 95% bootstrap intervals, and the plot."""
    rows = [r for path in (args.csv or [args.out]) for r in load_rows(Path(path))]
    ref = json.loads(Path(args.reference).read_text()) if Path(args.reference).is_file() else {}
    summ = summarize(rows, ref)
    order = {s: i for i, s in enumerate(SETTINGS + LEARNED)}
    lines: list[str] = [
        f"95% percentile-bootstrap intervals over inputs ({N_BOOT} resamples, numpy seed {SEED}; the "
        "LLM resamples whole sequences). `within 1%`: every criterion's lower bound >= "
        f"{1 - TOLERANCE:g}. BPFP: all stream bits / all values.", ""]
    verdict: list[str] = []
    per_setting: list[str] = []
    for fam in ("llm", "vit", "cnn", "latent"):
        if fam not in summ:
            continue
        names = METRIC_NAMES[fam]
        keys = sorted(summ[fam], key=lambda k: (order.get(k[0], 99), float(k[1]), str(k[2])))
        crit_names = [c for c, _ in summ[fam][keys[0]]["crit"]]
        other = DISPLAY[fam]
        cols = (["setting", "bits/q", "n", "BPFP", "MSE"] + [f"{c} [95% CI]" for c in crit_names]
                + [names[("metric", "metric2", "metric3").index(m)] for m in other] + ["within 1%"])
        if fam == "cnn":
            cols.insert(-1, "exact binomial CI")
        lines += [f"### {fam} {TAPS[fam]}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for key in keys:
            s = summ[fam][key]
            vals = ([key[0], _key_label(key), str(s["n"]), f"{s['bpfp']:.3f}", f"{s['mse']:.4g}"]
                    + [iv.fmt() for _, iv in s["crit"]] + [s[m].fmt() for m in other])
            if fam == "cnn":
                k = int(round(s["metric"].estimate * s["n"]))
                cp = clopper_pearson(k, s["n"])
                vals.append(f"[{cp.low:.4f}, {cp.high:.4f}]")
            lines.append("| " + " | ".join(vals + ["yes" if s["ok"] else ""]) + " |")
        lines.append("")
        by: dict = {}
        for key in keys:
            by.setdefault(key[0], []).append((summ[fam][key]["bpfp"], key, summ[fam][key]["ok"]))
        for setting, pts in by.items():
            st, fo = _lowest(pts)
            f = lambda p, i: (_key_label(p[1]) if i == 0 else f"{p[0]:.3f}") if p else "never"
            per_setting.append(f"| {fam} | {setting} | {f(st, 0)} | {f(st, 1)} | {f(fo, 0)} | {f(fo, 1)} |")
        ok = sorted((s["bpfp"], k) for k, s in summ[fam].items() if s["ok"])
        low2 = [(min(iv.low for _, iv in s["crit"]), s["bpfp"], k) for k, s in summ[fam].items() if s["bpfp"] <= 2]
        best = max(low2) if low2 else None
        crit_txt = lambda k: "; ".join(f"{c} {iv.fmt()}" for c, iv in summ[fam][k]["crit"])
        lowest = (f"{ok[0][1][0]} {_key_label(ok[0][1])} at {ok[0][0]:.3f} BPFP ({crit_txt(ok[0][1])})"
                  if ok else "none of the settings measured")
        best_txt = (f"{best[2][0]} {_key_label(best[2])} at {best[1]:.3f} BPFP ({crit_txt(best[2])})"
                    if best else "no setting at <= 2 BPFP measured")
        verdict.append(f"| {fam} | {lowest} | {'yes' if ok and ok[0][0] <= 2 else 'no'} | {best_txt} |")
    lines += [f"### All families at <= {COMPACT_BPFP} BPFP", "",
              "| family | setting | bits/k | n | BPFP | criterion: estimate [95% CI] | within 1% |",
              "|---|---|---|---|---|---|---|"]
    for fam in ("llm", "vit", "cnn", "latent"):
        for key, s in sorted(summ.get(fam, {}).items(), key=lambda kv: kv[1]["bpfp"]):
            if s["bpfp"] <= COMPACT_BPFP:
                crit = "; ".join(f"{c} {iv.fmt()}" for c, iv in s["crit"])
                lines.append(f"| {fam} | {key[0]} | {_key_label(key)} | {s['n']} | {s['bpfp']:.3f} | {crit} | "
                             f"{'yes' if s['ok'] else ''} |")
    lines += ["", "### Per family: the lowest rate within 1% (CI rule)", "",
              "| family | lowest BPFP within 1% | <= 2 BPFP | highest lower bound at <= 2 BPFP |",
              "|---|---|---|---|"] + verdict
    lines += ["", "### Per setting", "",
              "`stable`: the lowest rate from which every higher rate of the setting also meets the "
              "criterion; `first`: the lowest rate that meets it at all.", "",
              "| family | setting | stable: bits/q | stable: BPFP | first: bits/q | first: BPFP |",
              "|---|---|---|---|---|---|"] + per_setting
    errs = [r for r in rows if r["error"]]
    lines += ["", f"Rows with errors: {len(errs)}."]
    for r in errs[:20]:
        lines.append(f"- {r['family']} {r['input_id']} {r['setting']} bits={r['bits']}: {r['error']}")
    text = "\n".join(lines) + "\n"
    Path(args.tables).parent.mkdir(parents=True, exist_ok=True)
    Path(args.tables).write_text(text)
    print(text)
    plot(summ, Path(args.plot))


def plot(summ: dict, path: Path) -> None:
    """Criterion metric (first criterion, with its 95% interval) against BPFP per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter

    fams = [f for f in ("llm", "vit", "cnn", "latent") if f in summ]
    names = sorted({key[0] for fam in fams for key in summ[fam]})
    color = {n: f"C{i % 10}" for i, n in enumerate(names)}  # one colour per setting in every panel
    fig, axes = plt.subplots(1, len(fams), figsize=(4.6 * len(fams), 4), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        by: dict = {}
        for key, s in summ[fam].items():
            by.setdefault(key[0], []).append((s["bpfp"], s["crit"][0][1]))
        for setting, pts in sorted(by.items()):
            pts.sort(key=lambda p: p[0])
            est = np.array([p[1].estimate for p in pts])
            err = np.array([[p[1].estimate - p[1].low, p[1].high - p[1].estimate] for p in pts]).T
            ax.errorbar([p[0] for p in pts], est, yerr=err, fmt="o-", ms=3, capsize=2, label=setting,
                        color=color[setting])
        ax.legend(fontsize=6)
        ax.axvline(2.0, color="grey", lw=0.8, ls="--")
        ax.axhline(1 - TOLERANCE, color="red", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # after set_xscale, which resets it
        ax.set_xlabel("BPFP (whole stream)")
        ax.set_ylabel(next(iter(summ[fam].values()))["crit"][0][0])
        ax.set_title(f"{fam} {TAPS[fam]}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def reference(args: argparse.Namespace) -> None:
    """Uncompressed numbers: the latent decode's PSNR vs the source image, and checks that
    rest(uncompressed tap) reproduces the full model (cnn top-1)."""
    import torch

    from featcodec.features.extract import load_manifest
    from featcodec.features.models import load_model

    torch.set_num_threads(args.threads)
    out: dict = {}
    m = load_model("latent")
    es = sorted(load_manifest(CORPUS, family="latent", tap="latent256", split="test"), key=lambda e: e["input_id"])[: args.n_inputs]
    ps = []
    for e in es:
        x = np.load(e["path"])
        img = np.clip(_np(m.rest("latent256", x)), 0, 1)
        ps.append(_psnr(img, _np(m.image_tensor(int(e["input_id"]), 256))))
    out["latent_src_psnr"] = float(np.mean(ps))
    out["latent_src_psnr_per_input"] = ps
    Path(args.reference).parent.mkdir(parents=True, exist_ok=True)
    Path(args.reference).write_text(json.dumps(out, indent=1))
    print(json.dumps({"latent_src_psnr": out["latent_src_psnr"]}))


def llm_outlier(args: argparse.Namespace) -> None:
    """Where the LLM hidden15 error goes: token 0 (the massive activation) vs the others, and
    how many of the transform's levels the outlier takes, per setting and bits (no model run)."""
    import featcodec
    from featcodec.features.extract import load_manifest

    es = sorted(load_manifest(CORPUS, family="llm", tap="hidden15", split="test"), key=lambda e: e["input_id"])[: args.n_inputs]
    xs = [np.load(e["path"]) for e in es]
    enc = Encoders("llm", "hidden15", args.n_train)
    print("| setting | bits | BPFP | MSE token 0 | MSE tokens 1.. | levels with \\|v\\| > 1000 | token-0 ch.507 decoded / true |")
    print("|---|---|---|---|---|---|---|")
    for setting in ("auto", "trained", "trained-clip", "trained-ch"):
        for b in (2, 4, 6, 8):
            f = enc.encoder(setting, b)
            r = []
            for x in xs:
                blob = f(x)
                y = featcodec.decode(blob).astype(np.float64)
                d = (y - x) ** 2
                h = featcodec.header(blob)
                r.append((len(blob) * 8 / x.size, d[:, 0].mean(), d[:, 1:].mean(), y[0, 0, 507] / x[0, 0, 507]))
            t = enc.fitted(setting, b) if setting != "auto" else featcodec.fit_transform(xs[0], bits=b)
            lv = np.asarray(t.levels)
            big = int((np.abs(lv) > 1000).sum()) if lv.ndim == 1 else int((np.abs(lv) > 1000).any(axis=0).sum())
            m = np.mean(r, axis=0)
            print(f"| {setting} | {b} | {m[0]:.3f} | {m[1]:.4g} | {m[2]:.4g} | {big}{' (input 0)' if setting == 'auto' else ''} | {m[3]:.4f} |")


# ----------------------------------------------------------------------------- KIVI comparison
#: featcodec settings whose curves ``compare-kivi`` reads by default (``--rivals``), each a
#: curve over its bits / k
KIVI_RIVALS = ("max-error", "scales-token", "scales-channel")


def bpfp_at(rate: np.ndarray, agree: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rate at which a curve first reaches agreement ``target``.

    ``rate`` and ``agree`` are ``(points, ...)``: the curve's points in ascending rate order
    (trailing axes: bootstrap resamples, broadcast with ``target``). Between the first pair
    of neighbouring points with ``agree[j] < target <= agree[j + 1]``, ``log(rate)`` is
    interpolated linearly in ``log(1 - agreement)`` (disagreement falls about geometrically
    with the rate); a target the first point already meets gives NaN (below the curve's
    range), as does one no point reaches.

    >>> round(float(bpfp_at(np.array([1.0, 4.0]), np.array([0.9, 0.99]), np.array(1 - 0.1**1.5))), 9)
    2.0
    """
    rate, agree = np.asarray(rate, np.float64), np.asarray(agree, np.float64)
    target = np.asarray(target, np.float64)
    shape = np.broadcast_shapes(rate.shape[1:], target.shape)
    out = np.full(shape, np.nan)
    done = np.zeros(shape, bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(rate.shape[0] - 1):
            a0, a1, r0, r1 = agree[j], agree[j + 1], rate[j], rate[j + 1]
            hit = ~done & (a0 < target) & (target <= a1)
            d0, d1, dt = np.log1p(-np.minimum(a0, 1.0)), np.log1p(-np.minimum(a1, 1.0)), np.log1p(-np.minimum(target, 1.0))
            f = np.where(np.isfinite(d1), (dt - d0) / (d1 - d0), 1.0)  # agreement 1: the upper point
            val = np.exp(np.log(r0) + np.clip(f, 0, 1) * (np.log(r1) - np.log(r0)))
            out = np.where(hit, val, out)
            done |= hit
    return out


def compare_kivi(args: argparse.Namespace) -> None:
    """For each KIVI-style point of the llm rows: its BPFP and next-token agreement [95% CI],
    and the BPFP each featcodec curve (``KIVI_RIVALS``, every bits / k measured) needs for
    the same agreement (:func:`bpfp_at`), the best of them and the ratio featcodec / KIVI
    with a 95% interval from the same bootstrap over sequences (every setting's agreement
    and rate recomputed on each resample of the inputs all settings share, the
    interpolation redone)."""
    rows = [r for path in (args.csv or [args.out]) for r in load_rows(Path(path))]
    per: dict = {}
    for r in rows:
        if r["family"] != "llm" or r["error"]:
            continue
        per.setdefault((r["setting"], r["bits"]), {}).setdefault(int(r["input_id"]), r)
    kivi_keys = sorted((k for k in per if k[0] in KIVI_SETTINGS),
                       key=lambda k: (int(k[1]), k[0].split("-")[1], int(k[0].split("-")[2])))
    rival_keys = [k for k in per if k[0] in (args.rivals or KIVI_RIVALS)]
    keys = kivi_keys + rival_keys
    ids = sorted(set.intersection(*(set(per[k]) for k in keys))) if keys else []
    if not kivi_keys or not ids:
        raise SystemExit("no KIVI rows with featcodec rows on common inputs")
    n = len(ids)
    idx = np.random.default_rng(SEED).integers(0, n, size=(N_BOOT, n))

    def stats(key: tuple) -> dict:
        rs = [per[key][i] for i in ids]
        numel = np.array([int(r["numel"]) for r in rs], np.float64)
        T = numel / 576
        agree = np.round(np.array([r["metric"] for r in rs]) * T)
        bits = np.array([r["bpfp"] for r in rs]) * numel
        return {"agree": agree.sum() / T.sum(), "rate": bits.sum() / numel.sum(),
                "agree_b": agree[idx].sum(1) / T[idx].sum(1), "rate_b": bits[idx].sum(1) / numel[idx].sum(1)}

    st = {k: stats(k) for k in keys}
    curves: dict = {}
    for k in rival_keys:
        curves.setdefault(k[0], []).append(k)
    for name in curves:
        curves[name].sort(key=lambda k: st[k]["rate"])
    lines = [f"LLM hidden15, {n} test sequences common to every setting below; next-token agreement "
             f"[95% bootstrap CI over sequences, {N_BOOT} resamples, seed {SEED}]. featcodec BPFP at the KIVI "
             "point's agreement: log(BPFP) linear in log(1 - agreement) between the two bracketing points of "
             "each featcodec curve (`<=`: the curve's lowest-rate point already reaches it, so that rate is an upper "
             "bound; `-`: the curve never reaches it); `best` is the lowest of the curves, its ratio's CI from the "
             "same resamples (each resample: both agreements and rates recomputed, the curve re-interpolated).", "",
             "featcodec curves (setting: bits or k -> BPFP / agreement):", ""]
    for name, ks in curves.items():
        lines.append(f"- {name}: " + "; ".join(f"{k[1]} -> {st[k]['rate']:.3f} / {st[k]['agree']:.4f}" for k in ks))
    lines += ["", "| KIVI | bits | G | BPFP | agreement [95% CI] | "
              + " | ".join(f"{c} BPFP" for c in curves) + " | best featcodec | featcodec / KIVI [95% CI] |",
              "|---|---:|---:|---:|---|" + "---:|" * len(curves) + "---|---|"]
    for k in kivi_keys:
        s = st[k]
        _, kper, g = k[0].split("-")
        agree_iv = bootstrap_ratio(*_agree_pair(per[k], ids))
        need, need_b, bound = {}, {}, {}
        for name, ks in curves.items():
            rate, rate_b = np.array([st[c]["rate"] for c in ks]), np.stack([st[c]["rate_b"] for c in ks])
            agree, agree_b = np.array([st[c]["agree"] for c in ks]), np.stack([st[c]["agree_b"] for c in ks])
            # a target the curve's first (lowest-rate) point already meets: that rate, an upper bound
            bound[name] = bool(agree[0] >= s["agree"])
            need[name] = float(rate[0]) if bound[name] else float(bpfp_at(rate, agree, np.array(s["agree"])))
            nb = bpfp_at(rate_b, agree_b, s["agree_b"])
            need_b[name] = np.where(np.isnan(nb) & (agree_b[0] >= s["agree_b"]), rate_b[0], nb)
        fin = {c: v for c, v in need.items() if math.isfinite(v)}
        fmt = lambda c: ("<= " if bound[c] else "") + f"{need[c]:.3f}"
        if fin:
            best = min(fin, key=fin.get)
            ratio_b = need_b[best] / s["rate_b"]
            miss = float(np.mean(~np.isfinite(ratio_b)))
            lo, hi = np.nanquantile(ratio_b, [0.025, 0.975])
            best_txt = f"{best} {fmt(best)}"
            ratio_txt = (f"{'<= ' if bound[best] else ''}{fin[best] / s['rate']:.3f} [{lo:.3f}, {hi:.3f}]"
                         + (f" ({miss:.1%} of resamples outside the curve)" if miss else ""))
        else:
            best_txt, ratio_txt = "outside every curve", "-"
        lines.append(f"| per {kper} | {k[1]} | {g} | {s['rate']:.3f} | {agree_iv.fmt()} | "
                     + " | ".join(fmt(c) if math.isfinite(need[c]) else "-" for c in curves)
                     + f" | {best_txt} | {ratio_txt} |")
    text = "\n".join(lines) + "\n"
    if args.tables_kivi:
        Path(args.tables_kivi).write_text(text)
    print(text)


def _agree_pair(by_id: dict, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(agreeing positions, positions) per sequence, in ``ids`` order."""
    T = np.array([int(by_id[i]["numel"]) / 576 for i in ids])
    return np.round(np.array([by_id[i]["metric"] for i in ids]) * T), T


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("run", "report", "reference", "llm-outlier", "compare-kivi"))
    p.add_argument("--families", nargs="+", default=list(TAPS), choices=list(TAPS))
    p.add_argument("--settings", nargs="+", default=list(SETTINGS + LEARNED))
    p.add_argument("--n-inputs", type=int, default=24, help="test inputs per family (default 24)")
    p.add_argument("--bits", nargs="+", type=int, default=None,
                   help="run: only these bits (max-error: these k) of the index settings (default all)")
    p.add_argument("--n-train", type=int, default=10, help="train features for the trained transforms")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--csv", nargs="+", help="report: the CSV files to read (default --out)")
    p.add_argument("--reference", default=str(ROOT / "benchmarks" / "results" / "task_fidelity_reference.json"))
    p.add_argument("--tables", default=str(ROOT / "benchmarks" / "results" / "task_fidelity_tables.md"))
    p.add_argument("--plot", default=str(ROOT / "docs" / "img" / "task_fidelity.png"))
    p.add_argument("--tables-kivi", help="compare-kivi: also write its Markdown here")
    p.add_argument("--rivals", nargs="+", help=f"compare-kivi: the featcodec settings (default {' '.join(KIVI_RIVALS)})")
    args = p.parse_args(argv)
    {"run": run, "report": report, "reference": reference, "llm-outlier": llm_outlier,
     "compare-kivi": compare_kivi}[args.command](args)


if __name__ == "__main__":
    main()
