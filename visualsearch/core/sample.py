"""A sample collection built from real photos that ship inside installed packages,
plus the near-duplicate variants (crop, resize, JPEG quality, flip, EXIF rotation,
brightness) that tests, benchmarks and the demo use."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable
from importlib import util
from pathlib import Path

from PIL import Image, ImageEnhance

# skimage.data photos that ship in its wheel (others would need a download)
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "horse.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
    "ihc.png",
)


def _package_dir(name: str) -> Path | None:
    spec = util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def skimage_photos() -> list[Path]:
    """The real photos shipped with scikit-image (empty if it is not installed)."""
    base = _package_dir("skimage")
    if base is None:
        return []
    return [base / "data" / n for n in SKIMAGE_PHOTOS if (base / "data" / n).exists()]


def imagenet_photos() -> list[Path]:
    """foolbox's 20 labelled ImageNet photos; `imagenet_06_609.jpg` is of class 609."""
    base = _package_dir("foolbox")
    if base is None:
        return []
    return sorted((base / "data").glob("imagenet_*.jpg"))


def imagenet_label(path: Path) -> int:
    return int(Path(path).stem.rsplit("_", 1)[1])


# -- near-duplicate variants -------------------------------------------------------------


def _jpeg(img: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, exif=exif if exif is not None else b"")
    return buf.getvalue()


def crop_variant(img: Image.Image) -> bytes:
    w, h = img.size
    return _jpeg(img.crop((w // 12, h // 12, w - w // 12, h - h // 12)))


def resize_variant(img: Image.Image) -> bytes:
    return _jpeg(img.resize((max(1, img.width * 3 // 5), max(1, img.height * 3 // 5))))


def quality_variant(img: Image.Image) -> bytes:
    return _jpeg(img, quality=25)


def flip_variant(img: Image.Image) -> bytes:
    return _jpeg(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def exif_rotate_variant(img: Image.Image) -> bytes:
    """Pixels stored sideways with an EXIF tag that turns them upright again."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return _jpeg(img.rotate(90, expand=True), exif=exif)


def brightness_variant(img: Image.Image) -> bytes:
    return _jpeg(ImageEnhance.Brightness(img.convert("RGB")).enhance(1.15))


VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "crop": crop_variant,
    "small": resize_variant,
    "q25": quality_variant,
    "flip": flip_variant,
    "rotated": exif_rotate_variant,
    "bright": brightness_variant,
}


def build_sample_collection(dest: Path, variants_of: int = 6) -> Path:
    """Create (once) a folder of real photos plus near-duplicate copies of a few.

    Returns `dest`. An existing folder is left as it is.
    """
    dest = Path(dest)
    if (dest / ".visualsearch-sample").exists():
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not a sample collection; not touching it")
    photos = skimage_photos() + imagenet_photos()
    if not photos:
        raise RuntimeError("no sample photos found: install scikit-image and foolbox")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=dest.parent))
    try:
        for sub in ("photos", "imagenet", "copies"):
            (tmp / sub).mkdir()
        for p in photos:
            sub = "imagenet" if p.name.startswith("imagenet_") else "photos"
            shutil.copy2(p, tmp / sub / p.name)
        sources = [
            p
            for p in skimage_photos()
            if p.stem in ("chelsea", "astronaut", "coffee", "rocket", "motorcycle_left", "retina")
        ]
        sources += imagenet_photos()[: max(0, variants_of - len(sources))]
        for i, p in enumerate(sources[:variants_of]):
            with Image.open(p) as img:
                img = img.convert("RGB")
                names = list(VARIANTS)
                for name in (names[i % len(names)], names[(i + 3) % len(names)]):
                    (tmp / "copies" / f"{p.stem}-{name}.jpg").write_bytes(VARIANTS[name](img))
        (tmp / ".visualsearch-sample").write_text("made by visualsearch\n")
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# -- labelled photos, for measuring clusterings ----------------------------------------


def subject_of(path: Path) -> str:
    """What a sample photo shows: its ImageNet class for foolbox's photos (two of them
    are jeeps), else its own name."""
    path = Path(path)
    if path.name.startswith("imagenet_"):
        return f"imagenet class {imagenet_label(path)}"
    return path.stem


# other shots of the same scene: (left, top, side) as fractions of the photo
FRAMINGS = ((0.0, 0.0, 0.6), (0.4, 0.0, 0.6), (0.0, 0.4, 0.6), (0.4, 0.4, 0.6), (0.25, 0.25, 0.5))


def framing(img: Image.Image, left: float, top: float, side: float) -> bytes:
    w, h = img.size
    box = (int(left * w), int(top * h), int((left + side) * w), int((top + side) * h))
    return _jpeg(img.crop(box))


def labelled_sample(variants: bool = True, framings: bool = False) -> list[tuple[str, bytes, str]]:
    """(name, encoded image, subject) for each sample photo, with `variants` each of its
    VARIANTS (near-duplicates), with `framings` each of its FRAMINGS (other shots of
    the same scene, not near-duplicates): these have the subject of their photo."""
    out = []
    for p in skimage_photos() + imagenet_photos():
        subject = subject_of(p)
        out.append((p.name, p.read_bytes(), subject))
        with Image.open(p) as img:
            rgb = img.convert("RGB")
        if variants:
            out += [(f"{p.stem}-{v}.jpg", make(rgb), subject) for v, make in VARIANTS.items()]
        if framings:
            out += [
                (f"{p.stem}-shot{i}.jpg", framing(rgb, *f), subject) for i, f in enumerate(FRAMINGS)
            ]
    return out
