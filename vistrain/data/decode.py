"""Image files to uint8 HWC arrays: JPEG through libjpeg-turbo (``simplejpeg``), at a reduced size when the
transform needs less than the full resolution, and everything else through OpenCV.

Every image comes out upright, the way a photo viewer shows it: an EXIF orientation tag (a phone's portrait photo
is stored sideways with tag 6) is applied after decoding, and :func:`header` gives the upright size. OpenCV's
``imread`` does the same; PIL and torchvision's loaders (``ImageFolder``) do not unless asked.

A JPEG is decoded strictly: a truncated or corrupt file is an :class:`ImageDecodeError` (OpenCV and
libjpeg's default decode it anyway, grey where data is missing). Reduced decoding scales in the DCT
(libjpeg-turbo's M/8 factors) for a fraction of the full cost; :func:`header` reads only the size.
"""

from __future__ import annotations

import io
import os
import struct

import cv2
import numpy as np

# Unreadable files are reported by name (skipped lists, one error line): OpenCV's own warnings would add
# stray stderr lines such as "PNG input buffer is incomplete".
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".avif", ".heic", ".heif")
# HEIC/HEIF (an iPhone's photos) are read by PIL with the pillow-heif plugin (pip install 'vistrain[heif]')
HEIF_EXTENSIONS = (".heic", ".heif")
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
HEIF_HINT = "pip install 'vistrain[heif]' (pillow-heif) to read HEIC/HEIF images, or convert them to JPEG"


ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 upright, 2-8 the mirrorings and quarter turns to undo
EXIF_SEARCH = 1 << 16  # a JPEG's EXIF (APP1) segment comes first and is at most 64 KB


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


def is_heif(data: bytes) -> bool:
    """Whether *data* is an HEIF container holding HEVC (HEIC) or generic HEIF images (its ``ftyp`` brand)."""
    return data[4:8] == b"ftyp" and bytes(data[8:12]) in HEIF_BRANDS


def heif_available() -> bool:
    """Whether HEIC/HEIF images can be read (pillow-heif is installed); registers its PIL opener once."""
    global _HEIF
    if _HEIF is None:
        try:
            import pillow_heif
        except ImportError:
            _HEIF = False
        else:
            pillow_heif.register_heif_opener(thumbnails=False)
            _HEIF = True
    return _HEIF


_HEIF: bool | None = None


def is_png(data: bytes | memoryview) -> bool:
    """Whether *data* starts with the PNG signature."""
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG, PNG or WebP file's bytes; 1 when it has none or it cannot be read.

    Files without EXIF are told apart by a byte search; only those with it are parsed (by PIL, header only)."""
    if is_jpeg(data):
        tagged = data.find(b"Exif\x00\x00", 0, EXIF_SEARCH) >= 0
    elif is_png(data):
        tagged = data.find(b"eXIf") >= 0
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        tagged = data.find(b"EXIF", 12) >= 0
    else:
        return 1
    if not tagged:
        return 1
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block leaves the image as stored; decoding reports a damaged image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(img: np.ndarray, orient: int) -> np.ndarray:
    """*img* (HWC) as shown under EXIF orientation *orient*: mirrored and/or turned by quarter turns (OpenCV's
    flips and rotations, several times faster than NumPy's strided copies)."""
    if orient <= 1 or orient > 8:
        return img
    if orient == 2:
        out = cv2.flip(img, 1)
    elif orient == 3:
        out = cv2.rotate(img, cv2.ROTATE_180)
    elif orient == 4:
        out = cv2.flip(img, 0)
    elif orient == 5:
        out = cv2.transpose(img)
    elif orient == 6:
        out = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    elif orient == 7:
        out = cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    else:
        out = cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return out[..., None] if out.ndim == 2 else out


def header(data: bytes, orient: int | None = None) -> tuple[int, int, int] | None:
    """(height, width, channels) of the upright image from the header alone, for JPEG and PNG; None for other
    formats. *orient* is the file's :func:`orientation` where the caller has it already."""
    if is_jpeg(data):
        import simplejpeg

        try:
            h, w, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            return None
        info = int(h), int(w), 1 if colorspace == "Gray" else 3
    elif is_png(data) and len(data) >= 26 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        color_type = data[25]
        info = int(h), int(w), 1 if color_type in (0, 4) else 3
    elif is_heif(data) and heif_available():  # pillow-heif reads the container's size without decoding
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.height, im.width, 1 if im.mode in ("L", "LA") else 3
        except Exception:  # a damaged or incomplete file: decoding reports it
            return None
    else:
        return None
    return (info[1], info[0], info[2]) if (orientation(data) if orient is None else orient) >= 5 else info


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


def decode(data: bytes, name: str = "image", *, min_size: tuple[int, int] | None = None,
           orient: int | None = None) -> np.ndarray:
    """Decode *data* to uint8 HWC (1 or 3 channels, RGB order).

    With *min_size* ``(h, w)`` (of the upright image) a JPEG is decoded at the smallest libjpeg-turbo scale whose
    result is still at least that large (never larger than the file); other formats decode at full size. The
    result is upright (see :func:`orientation`; *orient* is the file's where the caller has it already).
    """
    orient = orientation(data) if orient is None else orient
    if is_jpeg(data):
        import simplejpeg

        if min_size and orient >= 5:  # the file holds the image turned: its height is the upright width
            min_size = (min_size[1], min_size[0])
        try:
            _h, _w, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
            gray = colorspace == "Gray"
            kwargs = {"min_height": int(min_size[0]), "min_width": int(min_size[1])} if min_size else {}
            img = simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB", strict=True, **kwargs)
        except ValueError as exc:
            if "unsupported" in str(exc).lower() or "CMYK" in str(exc):
                return upright(_decode_cv(data, name), orient)  # CMYK/YCCK and other rare JPEGs: OpenCV converts
            raise ImageDecodeError(f"{name} is a broken JPEG: {exc}") from None
        return upright(img if img.ndim == 3 else img[..., None], orient)
    if is_heif(data):  # HEIC: pillow-heif applies the container's rotation and mirroring itself
        return _decode_pil(data, name)
    return upright(_decode_cv(data, name), orient)


def _decode_cv(data: bytes, name: str) -> np.ndarray:
    # IMREAD_UNCHANGED keeps 16 bits and alpha and ignores EXIF orientation (decode applies it, for every format)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        if data[4:8] == b"ftyp":  # AVIF where this OpenCV lacks the codec: PIL reads it (Pillow 11.2+)
            return _decode_pil(data, name)
        raise ImageDecodeError(f"{name} is not a readable image")
    return _to_uint8_rgb(img)


def _decode_pil(data: bytes, name: str) -> np.ndarray:
    """HEIC/HEIF (with pillow-heif) and AVIF through PIL, as uint8 HWC with 1 or 3 channels."""
    if is_heif(data) and not heif_available():
        raise ImageDecodeError(f"{name} is a HEIC/HEIF image and pillow-heif is not installed ({HEIF_HINT})")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("L" if im.mode in ("L", "LA") else "RGB")
            img = np.asarray(im)
    except Exception as exc:
        raise ImageDecodeError(f"{name} is not a readable image ({exc})") from None
    return img[..., None] if img.ndim == 2 else img


def read_image_file(path: str | os.PathLike, *, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read and decode an image file (see :func:`decode`); an unreadable file is an ImageDecodeError."""
    return decode(read_bytes(path), repr(os.fspath(path)), min_size=min_size)
