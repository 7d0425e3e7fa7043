"""Images with Pillow: Caffe's ImageData source (a list file of images and labels) and the
decoding that LMDB's encoded Datum records and scripts/predict.py share.

The list file has one `relative/path label` line per image (the label follows the LAST space,
so paths may hold spaces; blank lines are skipped); paths are relative to `root_folder`
(default: the list file's folder). Each image is read as Caffe reads it (ReadImageToCVMat):

    is_color: true   3 channels in OpenCV's order, B, G, R (a grey image is replicated)
    is_color: false  1 channel of grey (Pillow's ITU-R 601-2 luma of a colour image)
    new_height/new_width  resized to that size, bilinear (Pillow's bilinear can differ from
                          OpenCV's by a grey level or so)

and comes out (C, H, W) uint8. Without resizing, every image must have the size of the first.
An image whose header declares more than MAX_IMAGE_PIXELS pixels is refused before it is
decoded; a truncated or corrupt image is a DataError naming the list file's line and the image.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..files import regular_file
from .base import Source, check_feeds

MAX_IMAGE_PIXELS = 1 << 26          # 67 megapixels: a 8192 x 8192 image fits


def pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading images needs Pillow: pip install -e '.[data]'") from None
    return Image


def decode_image(content: bytes | Path, source: str, is_color: bool | None = True,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file (a path, or its bytes) as a (C, H, W) uint8 array: BGR when `is_color`,
    grey when false, as stored (1 or 3 channels) when None; resized to `size` (height, width)
    when given. DataError naming `source` for what cannot be decoded."""
    Image = pillow()
    if not isinstance(content, bytes):
        regular_file(content, "image", source)
    try:
        handle = io.BytesIO(content) if isinstance(content, bytes) else open(content, "rb")
    except OSError as err:
        raise DataError(f"{source}: cannot read ({err.strerror})") from None
    try:
        with handle, Image.open(handle) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{source}: the image declares {width} x {height} pixels, over "
                                f"the {MAX_IMAGE_PIXELS} an image may have")
            image.load()
            if is_color is None:
                is_color = image.mode not in ("1", "L", "LA", "I", "I;16", "F")
            image = image.convert("RGB" if is_color else "L")
            if size is not None and (height, width) != size:
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{source}: not a readable image ({err})") from None
    if pixels.ndim == 2:
        return pixels[np.newaxis].copy()
    return np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1))


def read_list(path: Path) -> list[tuple[str, int, int]]:
    """(image path, label, line number) of each line of an image list file (a regular file)."""
    regular_file(path, "image list")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise DataError(f"{path}: cannot read the image list ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the image list is not UTF-8 text") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name, _, label = line.rpartition(" ")
        try:
            value = int(label)
        except ValueError:
            value = None
        if not name.strip() or value is None:
            raise DataError(f"{path}:{number}: expected 'relative/path label' (an integer "
                            f"label after the last space), got {line[:60]!r}")
        entries.append((name.strip(), value, number))
    if not entries:
        raise DataError(f"{path}: the image list holds no images")
    return entries


class ImageListSource(Source):
    """Caffe's ImageData: images and labels from a list file (see the module docstring)."""
    on_disk = True

    def __init__(self, list_file: Path, feeds: list[str], root_folder: Path,
                 size: tuple[int, int] | None, is_color: bool):
        self.name = f"{list_file} (images)"
        self.list_file, self.root, self.size, self.is_color = list_file, root_folder, size, \
            is_color
        self.entries = read_list(list_file)
        self.labels = np.array([label for _, label, _ in self.entries], dtype=np.int64)
        self.feeds = check_feeds(("images", "labels"), feeds, self.name)
        first = self._image(0)
        self.sample_shape = first.shape

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, i: int) -> str:
        name, _, number = self.entries[i]
        return f"line {number} ({name})"

    def _image(self, i: int) -> np.ndarray:
        name, _, number = self.entries[i]
        return decode_image(self.root / name, f"{self.list_file}:{number}: {self.root / name}",
                            self.is_color, self.size)

    def shapes(self) -> dict[str, tuple]:
        return {feed: (self.sample_shape if position == 0 else ())
                for position, feed in enumerate(self.feeds)}

    def read(self, index: np.ndarray, rng: np.random.Generator | None = None
             ) -> dict[str, np.ndarray]:
        out = {}
        feeds = self.feeds
        if feeds:
            images = np.empty((len(index),) + self.sample_shape, dtype=np.uint8)
            for slot, i in enumerate(index):
                image = self._image(int(i))
                if image.shape != self.sample_shape:
                    raise DataError(f"{self.list_file}: {self.record(int(i))} is "
                                    f"{image.shape[2]} x {image.shape[1]} with "
                                    f"{image.shape[0]} channel(s), but the first image is "
                                    f"{self.sample_shape[2]} x {self.sample_shape[1]} with "
                                    f"{self.sample_shape[0]}: set new_height and new_width")
                images[slot] = image
            out[feeds[0]] = images
        if len(feeds) > 1:
            out[feeds[1]] = self.labels[index]
        return out
