"""Caffe's ImageData with Pillow: list files, root_folder, BGR channel order, grey, resizing,
and corrupt, truncated or oversized images refused naming the list line and the file."""
from __future__ import annotations

import numpy as np
import pytest

from net.errors import DataError
from net.train.sources import images

Image = pytest.importorskip("PIL.Image")


def save(path, rgb: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def colour(height=4, width=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_colour_is_bgr_channels_first_and_grey_is_one_channel(tmp_path):
    rgb = colour()
    path = save(tmp_path / "a.png", rgb)
    bgr = images.decode_image(path, "a.png", True)
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1].transpose(2, 0, 1))
    grey = images.decode_image(path, "a.png", False)
    np.testing.assert_array_equal(grey[0], np.asarray(Image.fromarray(rgb).convert("L")))
    stored = images.decode_image(save(tmp_path / "g.png", rgb[:, :, 0]), "g.png", None)
    assert stored.shape == (1, 4, 5)


def test_list_file_root_folder_resize_and_labels(tmp_path):
    for index in range(3):
        save(tmp_path / "pics" / f"im {index}.png", colour(6 + index, 4, index))
    (tmp_path / "list.txt").write_text("im 0.png 2\n\nim 1.png 0\nim 2.png 1\n")
    source = images.ImageListSource(tmp_path / "list.txt", ["data", "label"], tmp_path / "pics",
                                    (3, 2), True)
    batch = source.read(np.array([2, 0]))
    assert batch["data"].shape == (2, 3, 3, 2) and batch["label"].tolist() == [1, 2]
    assert source.shapes() == {"data": (3, 3, 2), "label": ()}
    assert source.record(1) == "line 3 (im 1.png)"


def test_images_of_another_size_need_a_resize(tmp_path):
    save(tmp_path / "a.png", colour(4, 4))
    save(tmp_path / "b.png", colour(5, 4))
    (tmp_path / "list.txt").write_text("a.png 0\nb.png 1\n")
    source = images.ImageListSource(tmp_path / "list.txt", ["data"], tmp_path, None, True)
    with pytest.raises(DataError, match=r"line 2 \(b.png\) is 4 x 5 .* set new_height"):
        source.read(np.array([0, 1]))


@pytest.mark.parametrize("line, fragment", [
    ("a.png", r"list.txt:1: expected 'relative/path label'"),
    ("a.png x", r"list.txt:1: expected 'relative/path label'"),
])
def test_bad_list_lines_are_located(tmp_path, line, fragment):
    (tmp_path / "list.txt").write_text(line + "\n")
    with pytest.raises(DataError, match=fragment):
        images.read_list(tmp_path / "list.txt")


def test_corrupt_truncated_and_missing_images_name_the_line(tmp_path):
    good = save(tmp_path / "good.png", colour(8, 8)).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[:len(good) // 2])
    (tmp_path / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (tmp_path / "list.txt").write_text("good.png 0\ncut.png 1\nnoise.png 2\ngone.png 3\n")
    source = images.ImageListSource(tmp_path / "list.txt", ["data", "label"], tmp_path, None,
                                    True)
    for index, line, fragment in ((1, 2, "not a readable image"), (2, 3, "not a readable image"),
                                  (3, 4, "no such image")):
        with pytest.raises(DataError, match=f"list.txt:{line}: .*{fragment}"):
            source.read(np.array([0, index]))


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)
    path = save(tmp_path / "big.png", colour(20, 20))
    with pytest.raises(DataError, match="declares 20 x 20 pixels, over the 100"):
        images.decode_image(path, str(path))
