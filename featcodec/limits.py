"""Caps that bound what featcodec accepts from untrusted bytes (stream headers, pack infos).

A stream may not make the decoder allocate more than these; tensors larger than
``MAX_ELEMENTS`` values must be split before encoding.
"""

from __future__ import annotations

MAX_NDIM = 8
"""Most dimensions a tensor (or a shape in a stream header) may have."""

MAX_DIM = 2**31 - 1
"""Largest single dimension."""

MAX_ELEMENTS = 2**31
"""Most values one tensor (or one stream) may hold: 8 GB of float32."""

MAX_HEADER_BYTES = 1 << 20
"""Largest JSON header a stream may carry (1 MiB)."""

MAX_SECTIONS = 16
"""Most payload sections a stream may carry."""
