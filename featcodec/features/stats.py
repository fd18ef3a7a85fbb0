"""Per-tap statistics of features: the numbers that decide how hard a tensor is to code.

Example:
    >>> import numpy as np
    >>> s = tensor_stats([np.zeros((1, 4), np.float32), np.ones((1, 4), np.float32)])
    >>> s["zeros"], s["max_abs"]
    (0.5, 1.0)
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Iterable

import numpy as np

__all__ = ["tensor_stats", "corpus_stats", "markdown_table"]


def tensor_stats(arrays: Iterable[np.ndarray]) -> dict:
    """Pooled statistics over all values of ``arrays`` (float64 accumulation).

    Keys: n (values), mean, std, max_abs, kurtosis (Pearson, 3 for a Gaussian),
    zeros (fraction exactly 0), p999 (99.9th percentile of |x|).
    """
    n = 0
    s1 = s2 = 0.0
    max_abs = 0.0
    zeros = 0
    chunks = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float64).ravel()
        n += a.size
        s1 += a.sum()
        s2 += (a * a).sum()
        max_abs = max(max_abs, float(np.abs(a).max()) if a.size else 0.0)
        zeros += int((a == 0).sum())
        chunks.append(a)
    if n == 0:
        raise ValueError("no values")
    mean = s1 / n
    var = max(s2 / n - mean * mean, 0.0)
    m4 = sum(float(((c - mean) ** 4).sum()) for c in chunks) / n
    absall = np.abs(np.concatenate(chunks))
    return {"n": n, "mean": mean, "std": var ** 0.5, "max_abs": max_abs,
            "kurtosis": m4 / var ** 2 if var > 0 else float("nan"), "zeros": zeros / n,
            "p999": float(np.percentile(absall, 99.9))}


def corpus_stats(root: str | os.PathLike, split: str = "test") -> list[dict]:
    """Statistics per (family, tap) over one split of a corpus (``"all"``: every split)."""
    from .extract import load_manifest

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    where = {} if split == "all" else {"split": split}
    for e in load_manifest(root, **where):
        groups[(e["family"], e["tap"])].append(e)
    out = []
    for (family, tap), entries in sorted(groups.items()):
        st = tensor_stats(np.load(e["path"]) for e in entries)
        shapes = sorted({tuple(e["shape"]) for e in entries})
        shape = str(shapes[0]) if len(shapes) == 1 else f"{shapes[0]}..{shapes[-1]}"
        out.append({"family": family, "tap": tap, "files": len(entries), "shape": shape, **st})
    return out


def markdown_table(rows: list[dict]) -> str:
    """Rows of :func:`corpus_stats` as a Markdown table."""
    head = ("| family | tap | files | shape | mean | std | max\\|x\\| | p99.9 \\|x\\| "
            "| kurtosis | zeros |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['family']} | {r['tap']} | {r['files']} | {r['shape'].replace(' ', '')} "
                     f"| {r['mean']:.3g} | {r['std']:.3g} | {r['max_abs']:.4g} | {r['p999']:.3g} "
                     f"| {r['kurtosis']:.3g} | {r['zeros']:.1%} |")
    return "\n".join(lines)
