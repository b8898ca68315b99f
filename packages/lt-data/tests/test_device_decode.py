"""DeviceDecoder: JPEG bytes from the workers, decoded in batches (here on the CPU, the same
code as on a GPU with nvjpeg), match PIL's decode; EXIF orientation, other formats, files
the decoder rejects and bad files are handled like the worker path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lt_data import (
    DeviceDecoder,
    ImageDataset,
    WebImageDataset,
    collate_images,
    decode_image,
    make_shards,
    sample_image,
)
from lt_data._device_decode import is_jpeg, jpeg_orientation

SIZE = (48, 64)


def _photo(path: Path, size: tuple[int, int] = (120, 90), orientation: int = 1) -> None:
    """A smooth, asymmetric picture (a wrong rotation or flip changes it a lot)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 9.0) * (y > h // 3)], -1)
    img = Image.fromarray(rgb.astype(np.uint8))
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif)


def _decoded(files: list[Path]) -> tuple[torch.Tensor, dict[str, object]]:
    dataset = ImageDataset(files, SIZE, jpeg_bytes=True)
    batch = collate_images([dataset[i] for i in range(len(dataset))])
    out = DeviceDecoder(SIZE, "cpu")(batch)
    return out["images"], out


@pytest.mark.parametrize("orientation", range(1, 9))
def test_matches_pil_for_every_exif_orientation(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / "photo.jpg"
    _photo(path, orientation=orientation)
    assert jpeg_orientation(path.read_bytes()) == orientation
    images, _ = _decoded([path])
    reference = decode_image(path, SIZE)  # PIL: exif_transpose, bicubic, center crop
    assert images.shape == (1, 3, *SIZE) and images.dtype == torch.uint8
    diff = (images[0].float() - reference.float()).abs().mean()
    assert diff < 6, diff
    upright = decode_image(tmp_path / "photo.jpg", SIZE)
    if orientation != 1:  # the orientation matters: ignoring it would differ a lot
        _photo(tmp_path / "plain.jpg", orientation=1)
        ignored = decode_image(tmp_path / "plain.jpg", SIZE)
        assert (ignored.float() - upright.float()).abs().mean() > 20


def test_other_formats_bad_files_and_order(tmp_path: Path) -> None:
    _photo(tmp_path / "a.jpg")
    Image.new("RGB", (70, 50), (10, 200, 30)).save(tmp_path / "b.png")
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)  # a JPEG in name only
    (tmp_path / "d.jpg").write_bytes(b"not an image")
    files = [tmp_path / n for n in ("a.jpg", "b.png", "c.jpg", "d.jpg")]
    dataset = ImageDataset(files, SIZE, jpeg_bytes=True)
    items = [dataset[i] for i in range(4)]
    assert items[0]["image"] is None and is_jpeg(items[0]["encoded"].numpy().tobytes())
    assert items[1]["image"] is not None  # the worker decodes a PNG itself
    images, out = _decoded(files)
    assert len(images) == 2
    assert out["indices"].tolist() == [1, 0]  # worker-decoded first, then the JPEGs
    skipped = dict(out["skipped"])  # type: ignore[arg-type]
    assert set(skipped) == {str(files[2]), str(files[3])}
    assert "neither nvjpeg nor PIL" in skipped[str(files[2])]
    assert torch.equal(images[0], decode_image(files[1], SIZE))
    assert sample_image(items[0]) is not None and sample_image(items[2]) is None


def test_a_jpeg_the_device_rejects_falls_back_to_pil(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _photo(tmp_path / "a.jpg")
    _photo(tmp_path / "b.jpg", size=(90, 120))
    decoder = DeviceDecoder(SIZE, "cpu")
    real = decoder._decode
    monkeypatch.setattr(decoder, "_decode", lambda data: [None, *real(data[1:])])
    dataset = ImageDataset([tmp_path / "a.jpg", tmp_path / "b.jpg"], SIZE, jpeg_bytes=True)
    out = decoder(collate_images([dataset[0], dataset[1]]))
    assert len(out["images"]) == 2 and decoder.fallbacks == 1
    assert torch.equal(out["images"][0], decode_image(tmp_path / "a.jpg", SIZE))


def test_shards_send_jpeg_bytes_too(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        _photo(folder / f"{i}.jpg", orientation=6 if i == 0 else 1)
    make_shards(data=str(folder), out=str(tmp_path / "shards"), max_count=10)
    shard = sorted((tmp_path / "shards").glob("*.tar"))[0]
    items = list(WebImageDataset(str(shard), SIZE, shuffle_buffer=0, jpeg_bytes=True))
    assert len(items) == 4 and all(i["image"] is None for i in items)
    assert sorted(i["orientation"] for i in items) == [1, 1, 1, 6]
    out = DeviceDecoder(SIZE, "cpu")(collate_images(items))
    assert out["images"].shape == (4, 3, *SIZE)
