"""Encoders: one vector space per model. `load_encoder` turns a model spec into one.

Specs: ``builtin`` (offline, ships in the install) or ``clip[:ARCH[:TAG]]``
(open_clip; weights from the Hugging Face cache or `weights=FILE`).
"""

from __future__ import annotations

from pathlib import Path

from visualsearch.core.encoders.base import Encoder, ModelUnavailable, l2_normalize
from visualsearch.core.interrupts import raise_if_interrupted

__all__ = ["Encoder", "ModelUnavailable", "default_model_spec", "l2_normalize", "load_encoder"]


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """'clip:ViT-B-32:openai' → ('clip', 'ViT-B-32', 'openai')."""
    kind, _, rest = spec.strip().partition(":")
    arch, _, tag = rest.partition(":")
    kind = kind.lower()
    if kind not in ("builtin", "clip"):
        raise ModelUnavailable(f"unknown model {spec!r}: use 'builtin' or 'clip[:ARCH[:TAG]]'")
    if kind == "builtin" and rest:
        raise ModelUnavailable(f"the built-in model takes no options: {spec!r}")
    return kind, arch or None, tag or None


def default_model_spec() -> str:
    """CLIP ViT-B-32 when its weights are already on this computer, else the built-in model."""
    try:
        from visualsearch.core.encoders.clip import DEFAULT_ARCH, DEFAULT_TAG, cached_weights

        if cached_weights(DEFAULT_ARCH, DEFAULT_TAG) is not None:
            return f"clip:{DEFAULT_ARCH}:{DEFAULT_TAG}"
    except Exception as exc:
        raise_if_interrupted(exc)
    return "builtin"


def load_encoder(
    spec: str,
    cache_dir: Path,
    weights: Path | None = None,
    threads: int | None = None,
    fast_clip: bool = False,
    device: str = "auto",
) -> Encoder:
    """Build the encoder for `spec`; raises ModelUnavailable with advice on failure.
    `fast_clip`: CLIP's image tower on OpenVINO bf16 where the CPU has it (opt-in).
    `device`: "auto" (a GPU where there is one: devices.py), "cpu", "cuda" or "mps"."""
    kind, arch, tag = parse_spec(spec)
    if kind == "builtin":
        if weights is not None:
            raise ModelUnavailable("--weights is for CLIP models; the built-in model ships its own")
        from visualsearch.core.encoders.builtin import BuiltinEncoder

        return BuiltinEncoder(cache_dir=cache_dir, threads=threads, device=device)
    from visualsearch.core.encoders.clip import DEFAULT_ARCH, ClipEncoder

    return ClipEncoder(
        arch=arch or DEFAULT_ARCH,
        tag=tag,
        weights=weights,
        threads=threads,
        fast=fast_clip,
        cache_dir=cache_dir,
        device=device,
    )
