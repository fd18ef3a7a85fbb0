"""Command line: ``python -m featcodec.features extract --out DIR [options]``.

Example (the corpus the project uses; about 20 minutes on one core)::

    nohup nice -n 10 python -m featcodec.features extract --out /work/corpus \\
        > /work/corpus/extract.log 2>&1 &

``manifest`` rebuilds ``DIR/manifest.json`` from the files; ``stats`` prints per-tap
statistics (shape, std, max|x|, kurtosis, fraction of zeros) as a Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .extract import build_manifest, extract_corpus
from .models import FAMILIES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m featcodec.features",
                                description="Extract real network features into a corpus.")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract", help="run the models and save their taps")
    e.add_argument("--out", required=True, help="corpus root folder")
    e.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES,
                   help="families to extract, in this order (default: %(default)s)")
    e.add_argument("--n-train", type=int, default=120)
    e.add_argument("--n-val", type=int, default=16)
    e.add_argument("--n-test", type=int, default=24)
    e.add_argument("--n-train-heavy", type=int, default=48,
                   help="train inputs for heavy taps (TAEF2 latent512) (default %(default)s)")
    e.add_argument("--taps", nargs="+", default=None,
                   help="extract only these taps (default: every tap of each family)")
    e.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the machine is shared)")
    e.add_argument("--no-progress", action="store_true")
    m = sub.add_parser("manifest", help="rebuild DIR/manifest.json from the files")
    m.add_argument("--out", required=True)
    s = sub.add_parser("stats", help="per-tap statistics of a corpus as Markdown")
    s.add_argument("--out", required=True)
    s.add_argument("--split", default="test")
    args = p.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.cmd == "extract":
        import torch

        torch.set_num_threads(args.threads)
        extract_corpus(args.out, args.families, args.n_train, args.n_val, args.n_test,
                       progress=not args.no_progress, heavy_train_limit=args.n_train_heavy,
                       taps=args.taps)
    elif args.cmd == "manifest":
        print(len(build_manifest(args.out)), "files")
    else:
        from .stats import corpus_stats, markdown_table

        print(markdown_table(corpus_stats(args.out, split=args.split)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
