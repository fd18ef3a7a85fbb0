"""Fine-tune the shipped learned codecs with the feature-domain loss (issue 15, item 4).

Each shipped quality of ``--codec`` is the starting point of a run at its own lambda with
``distortion="feature"`` (``featcodec.codecs.learned.train.feature_rd_loss``) on the
train split of ``--corpus``, restricted to ``--families`` (default cnn, latent, vit: the
LLM stays out, so it remains a family the new objective never saw). Runs are resumable:
rerun the same command after a stop. ``--export DIR`` then writes the runs' weights and a
manifest to DIR (the codec's other entries copied from the shipped manifest), ready for
``FEATCODEC_LEARNED_WEIGHTS=DIR`` or to replace ``featcodec/codecs/learned/weights``.
``--lmbda Q=L`` trains quality Q at L instead (the new loss codes at more bits at the same
lambda: quality 1 moves down to keep the lowest rate).

The shipped weights (session 15) were made from the session-6 weights with::

    git checkout 059ab8d -- featcodec/codecs/learned/weights
    PYTHONPATH=$PWD python tools/feature_finetune.py --codec hyperprior --corpus /work/corpus_train \\
        --out /work/ft15 --steps 1500 --lmbda 1=0.0002 --export /work/ft15/hp_final
    cp /work/ft15/hp_final/* featcodec/codecs/learned/weights/
    PYTHONPATH=$PWD python tools/feature_finetune.py --codec elic --corpus /work/corpus_train \\
        --out /work/ft15 --steps 1000 --lmbda 1=0.0006 --export /work/ft15/elic_final
    cp /work/ft15/elic_final/* featcodec/codecs/learned/weights/
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codec", choices=("hyperprior", "elic"), default="hyperprior")
    ap.add_argument("--corpus", required=True, help="corpus with a train split")
    ap.add_argument("--out", required=True, help="directory of the runs")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--qualities", default=None, help="comma list (default: every shipped quality)")
    ap.add_argument("--families", default="cnn,latent,vit")
    ap.add_argument("--lmbda", action="append", default=[], metavar="Q=LAMBDA",
                    help="train quality Q at LAMBDA instead of its shipped lambda (repeatable)")
    ap.add_argument("--export", default=None, help="write the runs' weights and manifest here")
    a = ap.parse_args()

    from featcodec.codecs.learned import codec as lc
    from featcodec.codecs.learned.export import export_checkpoint, write_manifest
    from featcodec.codecs.learned.train import shipped_checkpoint, train

    shipped = [e for e in lc.manifest()["models"] if e["codec"] == a.codec]
    qualities = [int(q) for q in a.qualities.split(",")] if a.qualities else [e["quality"] for e in shipped]
    families = [f for f in a.families.split(",") if f]
    own = {int(q): float(v) for q, v in (o.split("=") for o in a.lmbda)}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for q in qualities:
        start = out / f"{a.codec}_q{q}_shipped.pt"
        lmbda = own.get(q, shipped_checkpoint(a.codec, q, start, a.corpus, families))
        run = out / (f"{a.codec}_q{q}" + (f"_lambda{lmbda:g}" if q in own else ""))
        train(a.corpus, str(run), arch=a.codec, lmbda=lmbda, steps=a.steps, init=str(start),
              families=families, distortion="feature", save_every=50, log_every=25)
        runs[q] = run / "ckpt.pt"
    if a.export:
        dest = Path(a.export)
        dest.mkdir(parents=True, exist_ok=True)
        weights = {e["quality"]: e["weights"] for e in shipped}
        models = []
        for e in lc.manifest()["models"]:
            if e["codec"] == a.codec and e["quality"] in runs:
                models.append(export_checkpoint(str(runs[e["quality"]]), dest, a.codec, e["quality"],
                                                weights[e["quality"]]))
            else:  # the shipped file, unchanged
                shutil.copy(lc.WEIGHTS_DIR / e["file"], dest / e["file"])
                models.append(e)
        print(write_manifest(dest, models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
