"""JPEG decoding, the model's input and the thumbnail, all made on the model's GPU.

With the model on a CUDA GPU the CPU's decode threads only read and hash files:
nvJPEG (torchvision.io.decode_jpeg) decodes each JPEG on the GPU at full size; the
centre square is resized there (bicubic, antialiased, as Pillow's `fit_square`) and
normalised into the model's input, and the thumbnail is resized and JPEG-encoded there
too. A JPEG the GPU cannot decode (CMYK, damaged) goes the CPU's way, which records why
it is unusable. On the CPU the same code runs with libjpeg-turbo, which is how the tests
check it without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
THUMBNAIL_QUALITY = 85  # as imageio.thumbnail_jpeg


def whole_jpeg(data: bytes) -> bool:
    """A JPEG that ends as one does. nvJPEG may draw a cut-off file without a word, where
    the CPU's decoder says it is truncated: such files, and JPEGs carrying more after
    their end (a phone's motion photo), go the CPU's way."""
    return data[:2] == JPEG_SOI and data[-64:].rstrip(b"\0")[-2:] == JPEG_EOI


def upright(image, orientation: int):
    """A (C, H, W) tensor turned the way its EXIF orientation (1–8) says, as Pillow's
    `ImageOps.exif_transpose` turns it."""
    import torch

    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1, -2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(image, -1, (-2, -1))  # 90° clockwise
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1, -2)
    if orientation == 8:
        return torch.rot90(image, 1, (-2, -1))
    return image


@dataclass
class JpegJob:
    """One JPEG to decode on the device, and what to make of it."""

    data: bytes
    orientation: int  # EXIF, 1–8
    pixels: bool  # the model's input
    thumbnail_size: int  # 0: no thumbnail


class JpegOnDevice:
    """Turns JPEG bytes into model inputs (and thumbnails) on `device`, a batch at a time."""

    def __init__(self, device: str, size: int, mean: Sequence[float], std: Sequence[float]):
        import torch

        self.device = torch.device(device)
        self.size = size
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(3, 1, 1)

    def prepare(self, jobs: Sequence[JpegJob]) -> list[tuple | None]:
        """Each job's (model input: a (3, size, size) float32 tensor on the device, or
        None; thumbnail JPEG bytes, or None), or None for a JPEG the decoder cannot read
        (the CPU's decoder then says why). One call decodes the whole batch: nvJPEG's
        batched decoder, where one image at a time from the decode threads ran at a third
        of the CPU's speed (bench/gpu.py)."""
        import torch
        from torchvision.io import encode_jpeg

        if not jobs:
            return []
        raws = [torch.from_numpy(np.frombuffer(job.data, np.uint8).copy()) for job in jobs]
        images = self._decode(raws)
        results: list[tuple | None] = []
        thumbnails = []  # (result index, uint8 image) to encode together
        for job, image in zip(jobs, images, strict=True):
            if image is None:
                results.append(None)
                continue
            image = upright(image, job.orientation).unsqueeze(0).float()
            results.append((self._model_input(image) if job.pixels else None, None))
            if job.thumbnail_size:
                thumbnails.append((len(results) - 1, _shrunk(image, job.thumbnail_size)))
        if thumbnails:
            encoded = encode_jpeg([t for _, t in thumbnails], quality=THUMBNAIL_QUALITY)
            for (i, _), jpeg in zip(thumbnails, encoded, strict=True):
                results[i] = (results[i][0], jpeg.cpu().numpy().tobytes())
        return results

    def _decode(self, raws: list) -> list:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(raws, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:  # one unreadable JPEG fails the batch: each on its own
            images = []
            for raw in raws:
                try:
                    images.append(decode_jpeg(raw, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    images.append(None)
            return images

    def _model_input(self, image):
        import torch.nn.functional as F

        h, w = image.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[..., top : top + side, left : left + side]
        x = F.interpolate(square, (self.size, self.size), mode="bicubic", antialias=True)
        x = x.clamp_(0, 255)[0] * (1.0 / 255.0)
        return (x - self._mean) / self._std


def _shrunk(image, size: int):
    """A (1, 3, H, W) float image fitted into size × size (never enlarged), as uint8 (3, h, w)."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    scale = min(1.0, size / max(h, w))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    if min(th, tw) < 8:  # antialiased bicubic draws a 1-pixel-wide strip nearly black
        image = F.interpolate(image, (th, tw), mode="area")
    elif (th, tw) != (h, w):
        image = F.interpolate(image, (th, tw), mode="bicubic", antialias=True)
    return image.clamp(0, 255).round().to(torch.uint8)[0]


def stack_pixels(pixels: Sequence):
    """One batch of model inputs: a numpy array when all were made on the CPU, else a
    tensor on the device of those made there (the CPU's are copied over)."""
    if all(isinstance(p, np.ndarray) for p in pixels):
        return np.stack(pixels)
    import torch

    device = next(p.device for p in pixels if isinstance(p, torch.Tensor))
    return torch.stack([torch.as_tensor(p).to(device) for p in pixels])


def decoder_for(device: str, size: int, mean, std) -> JpegOnDevice | None:
    """The JPEG decoder for a model on `device`: on CUDA (nvJPEG) only; elsewhere the
    CPU's decode threads do better than torchvision's CPU decoder would."""
    return JpegOnDevice(device, size, mean, std) if device.startswith("cuda") else None
