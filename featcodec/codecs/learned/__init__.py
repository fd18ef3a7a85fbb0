"""Pretrained learned codecs for feature planes (CompressAI hyperprior family).

Submodules:
    models   -- reduced-width, one-channel CompressAI architectures.
    data     -- corpus reading, per-tap transforms, plane packing, random crops.
    train    -- the training loop (``featcodec train``): checkpoints, resume, loss log.
"""
