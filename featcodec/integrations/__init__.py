"""featcodec inside other tools: :mod:`.cli` (the ``featcodec`` command), :mod:`.io`
(feature files), :mod:`.split` (split inference), :mod:`.distributed`
(torch.distributed), :mod:`.numcodecs_codec` and :mod:`.zarr_codec` (array stores),
:mod:`.compressai_coder` (featcodec's rANS as a CompressAI entropy coder).

Each loads on first use, so ``import featcodec`` does not import torch.distributed,
numcodecs or zarr."""
