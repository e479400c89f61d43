"""Image files to uint8 HWC arrays: JPEG through libjpeg-turbo (``simplejpeg``), at a reduced size when the
transform needs less than the full resolution, and everything else through OpenCV.

A JPEG is decoded strictly: a truncated or corrupt file is an :class:`ImageDecodeError` (OpenCV and
libjpeg's default decode it anyway, grey where data is missing). Reduced decoding scales in the DCT
(libjpeg-turbo's M/8 factors) for a fraction of the full cost; :func:`header` reads only the size.
"""

from __future__ import annotations

import os
import struct

import cv2
import numpy as np

# Unreadable files are reported by name (skipped lists, one error line): OpenCV's own warnings would add
# stray stderr lines such as "PNG input buffer is incomplete".
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class ImageDecodeError(ValueError):
    """A file that is not a readable image (missing, empty, truncated or corrupt)."""


def is_jpeg(data: bytes | memoryview) -> bool:
    """Whether *data* starts like a JPEG (SOI marker)."""
    return len(data) > 3 and data[0] == 0xFF and data[1] == 0xD8 and data[2] == 0xFF


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; a missing or empty file is an ImageDecodeError."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if not data:
        raise ImageDecodeError(f"{os.fspath(path)!r} is empty")
    return data


def header(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, channels) from the header alone, for JPEG and PNG; None for other formats."""
    if is_jpeg(data):
        import simplejpeg

        try:
            h, w, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            return None
        return int(h), int(w), 1 if colorspace == "Gray" else 3
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        color_type = data[25]
        return int(h), int(w), 1 if color_type in (0, 4) else 3
    return None


def _to_uint8_rgb(img: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A)/grey/16-bit result as uint8 HWC with 1 or 3 channels in RGB order."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return img[..., None]
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img[..., :1]


def decode(data: bytes, name: str = "image", *, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode *data* to uint8 HWC (1 or 3 channels, RGB order).

    With *min_size* ``(h, w)`` a JPEG is decoded at the smallest libjpeg-turbo scale whose result is still
    at least that large (never larger than the file); other formats decode at full size.
    """
    if is_jpeg(data):
        import simplejpeg

        try:
            _h, _w, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
            gray = colorspace == "Gray"
            kwargs = {"min_height": int(min_size[0]), "min_width": int(min_size[1])} if min_size else {}
            img = simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB", strict=True, **kwargs)
        except ValueError as exc:
            if "unsupported" in str(exc).lower() or "CMYK" in str(exc):
                return _decode_cv(data, name)  # CMYK/YCCK and other rare JPEGs: OpenCV converts them
            raise ImageDecodeError(f"{name} is a broken JPEG: {exc}") from None
        return img if img.ndim == 3 else img[..., None]
    return _decode_cv(data, name)


def _decode_cv(data: bytes, name: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageDecodeError(f"{name} is not a readable image")
    return _to_uint8_rgb(img)


def read_image_file(path: str | os.PathLike, *, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read and decode an image file (see :func:`decode`); an unreadable file is an ImageDecodeError."""
    return decode(read_bytes(path), repr(os.fspath(path)), min_size=min_size)
