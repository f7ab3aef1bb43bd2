"""Uploaded bytes -> RGB image -> tensor: every format and mode, EXIF, limits and broken files (made with Pillow)."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_core.images import (
    ImageError,
    Preprocessing,
    decode_image,
    model_view,
    preprocess,
    sample_images,
    to_pil,
)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def halves(size=(40, 20), left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert message[0].isupper() and message.endswith(".")
    assert message.count(". ") == 0, message  # one sentence (semicolons join the "what to do" part)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_round_trip_exactly(fmt):
    original = halves()
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode_image(encode(original, fmt, **kwargs))
    assert decoded.mode == "RGB" and decoded.size == (40, 20)
    assert np.array_equal(np.asarray(decoded), np.asarray(original))


def test_jpeg_decodes_close_to_the_original():
    decoded = decode_image(encode(halves(), "JPEG", quality=95))
    pixels = np.asarray(decoded).astype(int)
    assert decoded.size == (40, 20)
    assert np.abs(pixels[10, 5] - [255, 0, 0]).max() < 20 and np.abs(pixels[10, 35] - [0, 0, 255]).max() < 20


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored left half ends up on top
    data = encode(halves(), "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data)
    assert decoded.size == (20, 40)
    pixels = np.asarray(decoded).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 50  # top: red
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 50  # bottom: blue


def test_gif_gives_the_first_frame():
    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert tuple(np.asarray(decode_image(data))[8, 8]) == (255, 0, 0)


def test_grayscale_and_one_bit_become_rgb():
    gray = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1)), mode="L")
    decoded = np.asarray(decode_image(encode(gray, "PNG")))
    assert decoded.shape == (4, 16, 3)
    assert np.array_equal(decoded[..., 0], np.asarray(gray)) and np.array_equal(decoded[..., 0], decoded[..., 2])
    one_bit = Image.new("1", (8, 8), 1)
    assert tuple(np.asarray(decode_image(encode(one_bit, "BMP")))[0, 0]) == (255, 255, 255)


def test_rgba_and_la_are_composited_on_white():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    pixels = np.asarray(decode_image(encode(rgba, "PNG"))).astype(int)
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # fully transparent red -> white background
    assert tuple(pixels[0, 1]) == (0, 0, 255)  # opaque blue stays blue
    assert np.all(np.abs(pixels[0, 2] - 127) <= 1)  # half-transparent black -> mid grey
    la = Image.new("LA", (2, 2), (0, 0))
    assert tuple(np.asarray(decode_image(encode(la, "PNG")))[0, 0]) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white():
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    palette.paste(1, (0, 0, 2, 4))  # left half: index 1, declared transparent
    data = encode(palette, "PNG", transparency=1)
    pixels = np.asarray(decode_image(data))
    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[0, 3]) == (0, 255, 0)
    gif = np.asarray(decode_image(encode(palette, "GIF", transparency=1)))
    assert tuple(gif[0, 0]) == (255, 255, 255) and tuple(gif[0, 3]) == (0, 255, 0)


def test_cmyk_is_converted():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    assert tuple(np.asarray(decode_image(encode(cmyk, "TIFF")))[0, 0]) == (255, 0, 0)
    jpeg = np.asarray(decode_image(encode(cmyk, "JPEG", quality=95))).astype(int)
    assert np.abs(jpeg[4, 4] - [255, 0, 0]).max() < 20


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits():
    array = np.array([[0, 32768, 65535, 257]], dtype=np.uint16)
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    for fmt in ("PNG", "TIFF"):
        decoded = np.asarray(decode_image(encode(image, fmt)))
        assert decoded[0, :, 0].tolist() == [0, 128, 255, 1], fmt


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_sixteen_bit_rgb_png_is_converted():
    # Pillow cannot write 16-bit RGB, so write the PNG by hand: 2x1 pixels, bit depth 16, colour type 2.
    rows = b"\x00" + struct.pack(">6H", 65535, 0, 0, 0, 32896, 65535)
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0))
           + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))
    pixels = np.asarray(decode_image(png))
    assert pixels.shape == (1, 2, 3)
    assert tuple(pixels[0, 0]) == (255, 0, 0) and tuple(pixels[0, 1]) == (0, 128, 255)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (8000, 6000)), "PNG")  # 48 MP of zeros compress to a few kilobytes
    assert len(bomb) < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="safety limit") as info:
        decode_image(bomb)
    assert time.perf_counter() - start < 30  # a hang-guard: refused from the header, never decoded
    assert "8000x6000" in str(info.value)
    assert_one_sentence(str(info.value))
    with pytest.raises(ImageError, match="safety limit"):
        decode_image(encode(halves(), "PNG"), max_pixels=100)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF"])
def test_truncated_files_give_one_sentence(fmt):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encode(image, fmt)
    with pytest.raises(ImageError) as info:
        decode_image(data[: len(data) // 2])
    message = str(info.value)
    assert "truncated or damaged" in message or "not an image" in message
    assert_one_sentence(message)


@pytest.mark.parametrize("data, phrase", [
    (b"", "empty"),
    (b"hello, this is not an image at all", "not an image"),
    (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),  # a PNG signature with a broken header
], ids=["empty", "text", "random-bytes", "bad-png-header"])
def test_non_images_give_one_sentence(data, phrase):
    with pytest.raises(ImageError, match=phrase) as info:
        decode_image(data)
    assert_one_sentence(str(info.value))


def test_unsupported_format_is_named():
    with pytest.raises(ImageError, match="PPM image") as info:
        decode_image(encode(halves(), "PPM"))
    assert_one_sentence(str(info.value))


def test_preprocess_matches_torchvision_transform():
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V2
    transform = weights.transforms()
    prep = Preprocessing(transform.resize_size[0], transform.crop_size[0], tuple(transform.mean),
                         tuple(transform.std))
    photo = sample_images()["chelsea"]
    ours = preprocess(photo, prep)
    theirs = transform(photo).unsqueeze(0)
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == torch.float32
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert model_view(photo, prep).size == (224, 224)


def test_preprocess_small_and_round_trip_to_pil():
    prep = Preprocessing(32, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    tensor = preprocess(Image.new("RGB", (64, 48), (255, 0, 0)), prep)
    assert tensor.shape == (1, 3, 32, 32)
    assert torch.allclose(tensor[0, :, 5, 5], torch.tensor([2.0, -2.0, -2.0]))
    back = to_pil(torch.tensor([[[[1.0]], [[0.0]], [[0.5]]]]))
    assert back.getpixel((0, 0)) == (255, 0, 128)


def test_sample_images_are_bundled_photos():
    samples = sample_images()
    assert set(samples) == {"chelsea", "coffee", "astronaut", "rocket"}
    assert all(image.mode == "RGB" and min(image.size) >= 256 for image in samples.values())


# ------------------------------------------------------------------ what preprocessing can make of an image
@pytest.mark.parametrize("size", [(1, 60000), (60000, 1), (30, 700)], ids=["tall-strip", "wide-strip", "21-to-1"])
def test_extreme_aspect_ratios_are_refused_before_any_resize(size):
    """A few hundred bytes of 1x60000 would resize (shorter side to 256) to 15 G pixels: refused from the header."""
    data = encode(Image.new("L", size), "PNG")
    assert len(data) < 2000
    with pytest.raises(ImageError) as info:
        decode_image(data)
    ratio = max(size) / min(size)
    assert f"an aspect ratio of {ratio:.0f}:1, above the 20:1 limit" in str(info.value)
    assert_one_sentence(str(info.value))
    # An image made in memory (not decoded) is refused by the preprocessing itself.
    with pytest.raises(ImageError, match="20:1 limit"):
        model_view(Image.new("RGB", size), Preprocessing.IMAGENET)


def test_the_widest_allowed_image_stays_small_after_preprocessing():
    prep = Preprocessing(1024, 1024, (0.5,) * 3, (0.25,) * 3)  # the largest resize and crop allowed
    image = decode_image(encode(Image.new("RGB", (1, 20), (0, 255, 0)), "PNG"))  # 20:1, the limit
    view = model_view(image, prep)
    assert view.size == (1024, 1024) and view.getpixel((512, 512)) == (0, 255, 0)
    assert preprocess(image, prep).shape == (1, 3, 1024, 1024)


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "La", "CMYK", "YCbCr", "LAB", "HSV", "I",
         "I;16", "I;16B", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_pillow_mode_becomes_rgb_and_preprocesses(mode):
    image = Image.new(mode, (6, 4))
    view = model_view(image, Preprocessing(8, 8, (0.5,) * 3, (0.25,) * 3))
    assert view.mode == "RGB" and view.size == (8, 8)


@pytest.mark.parametrize("mode, value, expected", [
    ("I;16", 65535, (255, 255, 255)), ("I;16", 256 * 100, (100, 100, 100)), ("I", 65535, (255, 255, 255)),
    ("F", 0.5, (128, 128, 128)), ("LA", (0, 0), (255, 255, 255)), ("1", 1, (255, 255, 255)),
])
def test_deep_and_transparent_modes_survive_a_tiff_round_trip(mode, value, expected):
    data = encode(Image.new(mode, (5, 3), value), "TIFF")
    assert decode_image(data).getpixel((2, 1)) == expected


def test_multi_page_tiff_and_animated_gif_give_the_first_frame_only():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    for fmt in ("TIFF", "GIF"):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
        assert Image.open(io.BytesIO(data)).n_frames == 3
        assert decode_image(data).getpixel((4, 4)) == (255, 0, 0), fmt



def test_thirty_two_bit_integer_tiff_is_scaled_by_its_range():
    """Mode "I" (32-bit ints): values beyond 255 are a 16-bit range scaled to 0..255; within 0..255 kept as is."""
    wide = Image.fromarray(np.array([[0, 32768, 65535, 257]], dtype=np.int32))
    assert wide.mode == "I"
    assert np.asarray(decode_image(encode(wide, "TIFF")))[0, :, 0].tolist() == [0, 128, 255, 1]
    narrow = Image.fromarray(np.array([[0, 100, 255, 7]], dtype=np.int32))
    assert np.asarray(decode_image(encode(narrow, "TIFF")))[0, :, 0].tolist() == [0, 100, 255, 7]
