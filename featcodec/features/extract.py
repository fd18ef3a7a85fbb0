"""Build the feature corpus: run every model on its deterministic inputs and save the taps.

Layout (the contract other parts of featcodec rely on)::

    <root>/<family>/<split>/<tap>__<input_id>.npy      float32, the model's own shape
    <root>/manifest.json                               [{path, family, model, tap, split,
                                                         input_id, shape, dtype}, ...]

``path`` in the manifest is relative to ``<root>``. Splits are made BY INPUT: an input id
belongs to exactly one split, and its id block says which (train ids start at 0, val at
100000, test at 200000), so changing the split sizes never moves an input to another split
and the image families (vit, cnn, latent) share the same test images.

Extraction is resumable: an input whose files all exist is skipped, files are written
atomically (temporary name, then rename), and the manifest is rebuilt from the files.

Example:
    >>> split_ids(2, 1, 1)
    {'train': [0, 1], 'val': [100000], 'test': [200000]}
    >>> split_of(200003)
    'test'
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["SPLITS", "split_ids", "split_of", "feature_path", "extract_family",
           "build_manifest", "extract_corpus", "load_manifest"]

SPLITS = ("train", "val", "test")
_BLOCK = 100_000
log = logging.getLogger("featcodec.features")


def split_ids(n_train: int, n_val: int, n_test: int) -> dict[str, list[int]]:
    """Input ids of each split (disjoint id blocks)."""
    for n in (n_train, n_val, n_test):
        if not 0 <= n < _BLOCK:
            raise ValueError(f"split sizes must be in [0, {_BLOCK}), got {n}")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    return {s: [k * _BLOCK + i for i in range(sizes[s])] for k, s in enumerate(SPLITS)}


def split_of(input_id: int) -> str:
    """The split an input id belongs to."""
    return SPLITS[input_id // _BLOCK]


def feature_path(root: str | os.PathLike, family: str, tap: str, input_id: int) -> Path:
    """``<root>/<family>/<split>/<tap>__<input_id:06d>.npy``."""
    return Path(root) / family / split_of(input_id) / f"{tap}__{input_id:06d}.npy"


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr, dtype=np.float32))
    os.replace(tmp, path)


def extract_family(model, root: str | os.PathLike, ids: Iterable[int], *,
                   progress: bool = True, on_progress=None,
                   heavy_train_limit: int | None = None,
                   taps: Iterable[str] | None = None) -> int:
    """Extract the taps of ``model`` for ``ids`` into ``root``; returns inputs processed.

    ``taps`` restricts extraction to those of the model's taps (default: all of them).
    Inputs whose tap files all exist are skipped. The model's ``heavy_taps`` (if any) are
    extracted only for the first ``heavy_train_limit`` train inputs (and all val/test ones)
    when a limit is given. ``on_progress(done)`` is called every 20 inputs (the CLI uses it
    to refresh the manifest while a long family runs).
    """
    from tqdm import tqdm

    ids = list(ids)
    heavy = set(getattr(model, "heavy_taps", ()))
    wanted = model.taps if taps is None else tuple(t for t in model.taps if t in set(taps))
    done = 0
    bar = tqdm(ids, desc=model.family, disable=not progress, mininterval=5.0)
    for input_id in bar:
        skip_heavy = (heavy_train_limit is not None and split_of(input_id) == "train"
                      and input_id >= heavy_train_limit)
        missing = tuple(t for t in wanted
                        if not (skip_heavy and t in heavy)
                        and not feature_path(root, model.family, t, input_id).is_file())
        if not missing:
            continue
        feats = model.extract(input_id, missing)
        for tap, arr in feats.items():
            if not np.isfinite(arr).all():
                raise RuntimeError(f"{model.model} {tap} input {input_id}: non-finite values")
            _save(feature_path(root, model.family, tap, input_id), arr)
        done += 1
        if on_progress is not None and done % 20 == 0:
            on_progress(done)
    return done


def build_manifest(root: str | os.PathLike) -> list[dict]:
    """Scan ``root`` and (re)write ``root/manifest.json``; returns the entries."""
    from .models import MODELS

    root = Path(root)
    entries = []
    for family, cls in MODELS.items():
        for split in SPLITS:
            folder = root / family / split
            if not folder.is_dir():
                continue
            for f in sorted(folder.glob("*.npy")):
                tap, _, ident = f.stem.rpartition("__")
                arr = np.load(f, mmap_mode="r")
                entries.append({
                    "path": f.relative_to(root).as_posix(), "family": family,
                    "model": cls.model, "tap": tap, "split": split, "input_id": ident,
                    "shape": list(arr.shape), "dtype": str(arr.dtype),
                })
    tmp = root / f"manifest.json.tmp{os.getpid()}"
    tmp.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    os.replace(tmp, root / "manifest.json")
    return entries


def load_manifest(root: str | os.PathLike, **where: str) -> list[dict]:
    """Manifest entries, filtered by equality on any field, with absolute ``path``.

    >>> # load_manifest("/work/corpus", family="vit", tap="layer9", split="test")
    """
    root = Path(root)
    entries = json.loads((root / "manifest.json").read_text())
    out = []
    for e in entries:
        if all(str(e.get(k)) == str(v) for k, v in where.items()):
            out.append({**e, "path": str(root / e["path"])})
    return out


def extract_corpus(root: str | os.PathLike, families: Iterable[str], n_train: int = 120,
                   n_val: int = 16, n_test: int = 24, *, progress: bool = True,
                   heavy_train_limit: int | None = 48,
                   taps: Iterable[str] | None = None) -> None:
    """Extract ``families`` into ``root`` (test split first, then val, then train).

    Heavy taps (TAEF2 ``latent512``) get only ``heavy_train_limit`` train inputs. ``taps``
    restricts extraction to the listed taps (default: every tap); a family none of whose
    taps is listed is skipped.
    """
    from .models import MODELS, load_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ids = split_ids(n_train, n_val, n_test)
    order = ids["test"] + ids["val"] + ids["train"]
    taps = None if taps is None else tuple(taps)
    for family in families:
        if taps is not None and not set(MODELS[family].taps) & set(taps):
            log.info("%s: none of its taps (%s) requested; skipped", family, ", ".join(MODELS[family].taps))
            continue
        t0 = time.time()
        log.info("loading %s", family)
        model = load_model(family)
        log.info("%s loaded in %.1f s; extracting %d inputs", family, time.time() - t0, len(order))
        t1 = time.time()
        n = extract_family(model, root, order, progress=progress,
                           on_progress=lambda _d: build_manifest(root),
                           heavy_train_limit=heavy_train_limit, taps=taps)
        entries = build_manifest(root)
        log.info("%s: %d inputs extracted in %.1f s; manifest holds %d files", family, n,
                 time.time() - t1, len(entries))
        del model
