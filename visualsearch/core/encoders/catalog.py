"""The CLIP models offered for download, for both faces (Model menu, `visualsearch models`)."""

from __future__ import annotations

from dataclasses import dataclass

from visualsearch.core.encoders.clip import DEFAULT_ARCH, DEFAULT_TAG


@dataclass(frozen=True)
class ClipModel:
    arch: str
    tag: str
    download_mb: int  # size of its safetensors file
    note: str  # what it is good for, speed relative to ViT-B-32

    @property
    def spec(self) -> str:
        return f"clip:{self.arch}:{self.tag}"


# open_clip's LAION-2B models
CLIP_MODELS = (
    ClipModel(DEFAULT_ARCH, DEFAULT_TAG, 605, "free-form text, fast"),
    ClipModel("ViT-B-16", "laion2b_s34b_b88k", 599, "finer detail, ~3x slower"),
    ClipModel("ViT-L-14", "laion2b_s32b_b82k", 1710, "best, ~12x slower"),
)
