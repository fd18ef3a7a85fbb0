"""Write the golden streams in tests/data/golden/ (run only when the format changes on
purpose, and bump the format version then: first move the previous version's files to
tests/data/golden/v<N>/, which tests/test_golden.py keeps decoding).

    PYTHONPATH=$PWD python tools/make_golden.py

Each case stores its input (``<name>.input.npy``, exact), the transform the stream was
made with (``<name>.transform.json``), its stream (``<name>.fcs``) and, in manifest.json,
the encode arguments and the sha256 of the stream and of the decoded array's bytes.
tests/test_golden.py checks that every run decodes the streams to exactly those bytes,
that re-encoding the inputs with the stored transforms reproduces the streams byte for
byte (the format and pipeline), and that fitting on the inputs again gives the stored
transforms (the fit), so either kind of drift fails a test.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"


def _inputs() -> dict[str, tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(20261122)
    llm = rng.standard_t(3, size=(1, 16, 48)).astype(np.float32)
    llm[0, 0, 7] = 900.0  # a massive activation, as in real LLM hidden states
    mosaic = np.maximum(rng.normal(size=(1, 5, 6, 7)), 0).astype(np.float16)  # ReLU map
    kv = rng.normal(scale=2.0, size=(1, 2, 8, 8)).astype(np.float32)
    wide = rng.laplace(size=(3, 2, 40)).astype(np.float64)
    # tokens whose channels differ in centre and spread: the index codec's column model
    chans = rng.normal(size=(1, 256, 16)) * np.exp(rng.uniform(-2, 2, 16)) + rng.normal(size=16) * 4
    chans = chans.astype(np.float32)
    # a feature map whose channels differ the same way: the model's tile tables
    maps = rng.normal(size=(1, 24, 12, 12)) * np.exp(rng.uniform(-2, 2, (1, 24, 1, 1)))
    maps = (maps + rng.normal(size=(1, 24, 1, 1)) * 3).astype(np.float32)
    # ViT-like tokens: a class token, then a 16 x 16 grid of patches that vary smoothly
    # across the image: the grouped tables' predictions (version 4)
    grid = np.cumsum(np.cumsum(rng.normal(size=(16, 16, 12)), axis=0), axis=1) * 0.3
    vit = np.concatenate([rng.normal(size=(1, 12)) * 5, grid.reshape(256, 12)])[None].astype(np.float32)
    return {
        "tokens_f32_b8": (llm, {"bits": 8}),
        "mosaic_f16_b4": (mosaic, {"bits": 4}),
        "kv_bf16_b6": (kv, {"bits": 6, "layout": "kv", "torch_dtype": "bfloat16"}),
        "flat_f64_b10": (wide, {"bits": 10, "layout": "flat"}),
        "uniform_f32_b5": (llm[:, :4], {"bits": 5, "transform": "uniform"}),
        "maxerror_f32": (llm[:, 4:], {"max_error": 0.25}),
        "columns_f32_b6": (chans, {"bits": 6}),
        "tiles_f32": (maps, {"max_error": 0.3}),
        "predict_vit_f32": (vit, {"max_error": 0.2}),
    }


def prepare(x: np.ndarray, kw: dict):
    """The tensor to encode and the encode() kwargs for a stored case."""
    kw = dict(kw)
    td = kw.pop("torch_dtype", None)
    if td is not None:
        import torch

        return torch.from_numpy(x).to(getattr(torch, td)), kw
    return x, kw


def fitted_transform(x, kw: dict):
    """Fit the case's transform the way encode(transform="auto"/"uniform") does."""
    import featcodec

    if "max_error" in kw:
        return featcodec.fit_max_error(x, kw["max_error"])
    if kw.get("transform") == "uniform":
        return featcodec.fit_uniform(x, bits=kw["bits"])
    return featcodec.fit_transform(x, bits=kw["bits"], method="fast")


def decoded_bytes(y) -> bytes:
    """Canonical bytes of a decoded tensor (bfloat16 as its raw 16 bits), little-endian."""
    import torch

    if isinstance(y, torch.Tensor):
        if y.dtype == torch.bfloat16:
            return y.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        y = y.numpy()
    return np.ascontiguousarray(y).astype(y.dtype.newbyteorder("<")).tobytes()


def main() -> None:
    import featcodec

    GOLDEN.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, (x, kw) in _inputs().items():
        if kw.get("torch_dtype") == "bfloat16":
            import torch

            x = torch.from_numpy(x).to(torch.bfloat16).float().numpy()  # store exactly
        np.save(GOLDEN / f"{name}.input.npy", x)
        t, ekw = prepare(x, kw)
        blob = featcodec.encode(t, **ekw)
        (GOLDEN / f"{name}.fcs").write_bytes(blob)
        tr = fitted_transform(t, kw)
        assert tr.id == featcodec.header(blob)["transform"]["id"]
        tr.save(GOLDEN / f"{name}.transform.json")
        manifest[name] = {
            "encode": kw,
            "stream_sha256": hashlib.sha256(blob).hexdigest(),
            "decoded_sha256": hashlib.sha256(decoded_bytes(featcodec.decode(blob))).hexdigest(),
            "bytes": len(blob),
        }
    (GOLDEN / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the work tree's featcodec, when run as a script
    main()
