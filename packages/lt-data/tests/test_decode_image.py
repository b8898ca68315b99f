from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

from lt_core import ConfigError, DataError
from lt_data import decode_image

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def pixel(t: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in t[:, y, x])


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def test_rgb_same_size_is_exact(tmp_path: Path) -> None:
    img = Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3))
    img.save(tmp_path / "a.png")
    t = decode_image(tmp_path / "a.png", (32, 32))
    assert t.dtype == torch.uint8 and t.shape == (3, 32, 32) and t.is_contiguous()
    assert bytes(t.permute(1, 2, 0).flatten().tolist()) == img.tobytes()


def test_resize_shorter_side_and_center_crop(tmp_path: Path) -> None:
    img = Image.new("RGB", (64, 32), BLUE)  # (width, height)
    img.paste(RED, (0, 0, 16, 32))
    img.paste(RED, (48, 0, 64, 32))
    img.save(tmp_path / "wide.png")
    t = decode_image(tmp_path / "wide.png", (16, 16))
    assert t.shape == (3, 16, 16)
    # Height 32 -> 16 scales the width 64 -> 32; the center 16 columns are all blue.
    assert all(close(pixel(t, y, x), BLUE, 2) for y in range(16) for x in range(1, 15))
    t = decode_image(tmp_path / "wide.png", (8, 40))  # (height, width), non-square
    assert t.shape == (3, 8, 40)
    assert close(pixel(t, 4, 0), RED) and close(pixel(t, 4, 20), BLUE)


@pytest.mark.parametrize(
    ("mode", "color", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("1", 1, WHITE),
        ("RGBA", (255, 0, 0, 255), RED),
        ("RGBA", (0, 0, 0, 0), WHITE),  # fully transparent: white background
        ("RGBA", (0, 0, 0, 128), (127, 127, 127)),
        ("LA", (0, 0), WHITE),
        ("LA", (40, 255), (40, 40, 40)),
        ("CMYK", (0, 255, 255, 0), RED),
    ],
)
def test_modes(
    tmp_path: Path,
    write_image: Callable[..., Path],
    mode: str,
    color: object,
    expected: tuple[int, ...],
) -> None:
    ext = ".tif" if mode == "CMYK" else ".png"
    path = write_image(tmp_path / f"img{ext}", mode=mode, size=(8, 8), color=color)
    assert Image.open(path).mode == mode
    t = decode_image(path, (8, 8))
    assert t.shape == (3, 8, 8)
    assert close(pixel(t, 3, 3), expected, 1)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 2))
    img.putpalette([*RED, *BLUE])
    img.paste(1, (0, 1, 4, 2))  # bottom row: palette index 1 (blue)
    img.save(tmp_path / "p.png", transparency=1)
    assert Image.open(tmp_path / "p.png").mode == "P"
    t = decode_image(tmp_path / "p.png", (2, 4))
    assert pixel(t, 0, 0) == RED and pixel(t, 1, 0) == WHITE
    img.save(tmp_path / "opaque.png")  # no transparency: plain palette lookup
    t = decode_image(tmp_path / "opaque.png", (2, 4))
    assert pixel(t, 0, 0) == RED and pixel(t, 1, 0) == BLUE


def test_16_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = [0, 257, 32896, 65535]  # 65535 / 257 = 255
    img = Image.new("I;16", (4, 1))
    for x, v in enumerate(values):
        img.putpixel((x, 0), v)
    img.save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    t = decode_image(tmp_path / "deep.png", (1, 4))
    assert t[0, 0].tolist() == [0, 1, 128, 255]
    assert torch.equal(t[0], t[1]) and torch.equal(t[0], t[2])


def test_32_bit_int_and_float(tmp_path: Path) -> None:
    img = Image.new("I", (2, 1))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 65535)
    img.save(tmp_path / "i32.tif")
    assert decode_image(tmp_path / "i32.tif", (1, 2))[0, 0].tolist() == [0, 255]
    img = Image.new("F", (2, 1))
    img.putpixel((0, 0), 0.25)
    img.putpixel((1, 0), 1.0)
    img.save(tmp_path / "f.tif")
    assert decode_image(tmp_path / "f.tif", (1, 2))[0, 0].tolist() == [64, 255]


def test_exif_orientation(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), RED)  # stored landscape: left red, right blue
    img.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    t = decode_image(tmp_path / "rot.jpg", (40, 20))  # portrait (height 40, width 20)
    assert t.shape == (3, 40, 20)
    assert close(pixel(t, 5, 10), RED) and close(pixel(t, 35, 10), BLUE)


@pytest.mark.parametrize("orientation", [1, 6])
def test_large_jpeg_draft_matches_full_decode(tmp_path: Path, orientation: int) -> None:
    img = Image.linear_gradient("L").resize((600, 400)).convert("RGB")
    img.paste(RED, (100, 100, 300, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "big.jpg", exif=exif, quality=95)
    t = decode_image(tmp_path / "big.jpg", (24, 32))
    with Image.open(tmp_path / "big.jpg") as full:
        ref = ImageOps.fit(ImageOps.exif_transpose(full).convert("RGB"), (32, 24))
    ref_t = torch.tensor(list(ref.tobytes()), dtype=torch.uint8).view(24, 32, 3).permute(2, 0, 1)
    assert t.shape == (3, 24, 32)
    assert (t.float() - ref_t.float()).abs().mean() < 3


def test_undecodable_files(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    path = write_image(tmp_path / "big.jpg", size=(64, 64), quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"big\.jpg.*truncated"):
        decode_image(path, (32, 32))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match=r"text\.png"):
        decode_image(tmp_path / "text.png", (32, 32))
    with pytest.raises(DataError, match="missing"):
        decode_image(tmp_path / "missing.png", (32, 32))


@pytest.mark.parametrize("size", [(0, 32), (32,), (32.0, 32), "32", (True, 3)])
def test_bad_size(tmp_path: Path, size: object) -> None:
    with pytest.raises(ConfigError, match="height, width"):
        decode_image(tmp_path / "x.png", size)  # type: ignore[arg-type]
