"""The seal's stamp: generated in the traditional form of a Chinese official seal (a red ring, the
department's name along the upper arc, a five-pointed star in the centre, the seal's purpose below
it), or an operator's own image, normalised. Both are transparent PNGs (RGBA) so a stamp laid over
a document shows the text beneath. Pillow only.
"""
from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from PIL import Image, ImageDraw, ImageFont

from ..errors import DomainError

RED = (215, 38, 30, 255)  # #D7261E, the vermilion of seal paste
DEFAULT_SIZE = 400
SUPERSAMPLE = 2           # drawn larger, then scaled down: smooth edges without hand-written anti-aliasing
ARC_DEGREES = 240         # the name is spread over the upper 240° of the ring

# Debian's fonts-noto-cjk (what `.ci/run` and `make run` install), heaviest first: a stamp is bold.
KNOWN_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
FC_PATTERN = "Noto Serif CJK SC:bold"

NO_FONT = _l("No Chinese font for seal images: install the Debian package fonts-noto-cjk "
             "(make run does), or set IDP_SEAL_FONT to the path of a Simplified Chinese font file.")


def _sc_face(path: str) -> int | None:
    """Index of the Simplified Chinese face in a font collection (Noto CJK .ttc files hold JP, KR,
    SC, TC and HK faces; the SC one draws mainland glyph forms); 0 for a single font; None if unreadable."""
    try:
        ImageFont.truetype(path, 10, index=0)
    except OSError:
        return None
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    for index in range(32):
        try:
            family = ImageFont.truetype(path, 10, index=index).getname()[0] or ""
        except OSError:
            break
        if family.endswith(" SC") or " SC " in family:
            return index
    return 0


def _fc_match() -> str | None:
    """The file fontconfig picks for a Simplified Chinese serif bold face, if it is a CJK font
    (fc-match always answers, falling back to any font)."""
    if not shutil.which("fc-match"):
        return None
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}\n%{family}", FC_PATTERN], capture_output=True,
                             text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.splitlines()
    if len(lines) >= 2 and "CJK" in lines[1] and Path(lines[0]).is_file():
        return lines[0]
    return None


@functools.lru_cache(maxsize=8)
def _resolve(configured: str | None) -> tuple[str, int]:
    if configured:
        index = _sc_face(configured) if Path(configured).is_file() else None
        if index is None:
            raise DomainError(_l("The seal font %(path)s (IDP_SEAL_FONT) cannot be read.", path=configured),
                              code="seal_font_missing", status=500)
        return configured, index
    for path in (*KNOWN_FONTS, _fc_match()):
        if path and Path(path).is_file():
            index = _sc_face(path)
            if index is not None:
                return path, index
    raise DomainError(NO_FONT, code="seal_font_missing", status=500)


def font_file() -> tuple[str, int]:
    """(path, face index) of the font seal images are drawn with: IDP_SEAL_FONT, else a discovered
    Simplified Chinese CJK font; DomainError naming fonts-noto-cjk and IDP_SEAL_FONT if there is none."""
    return _resolve(current_app.config.get("SEAL_FONT") or None)


def _font(size: float) -> ImageFont.FreeTypeFont:
    path, index = font_file()
    return ImageFont.truetype(path, max(int(size), 1), index=index)


def _glyph(char: str, font: ImageFont.FreeTypeFont, angle: float) -> Image.Image:
    """One character as a red-on-transparent tile, rotated ``angle`` degrees clockwise about its centre."""
    left, top, right, bottom = font.getbbox(char)
    side = int(max(right - left, bottom - top, font.size) * 1.5) + 2
    tile = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((side / 2, side / 2), char, font=font, fill=RED, anchor="mm")
    return tile.rotate(-angle, resample=Image.Resampling.BICUBIC)


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, outer: float) -> None:
    inner = outer * math.sin(math.radians(18)) / math.sin(math.radians(126))  # a regular pentagram's ratio
    points = []
    for k in range(10):
        r = outer if k % 2 == 0 else inner
        a = math.radians(-90 + 36 * k)
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    draw.polygon(points, fill=RED)


def render_seal(department_name: str, seal_type: str, *, size_px: int = DEFAULT_SIZE) -> bytes:
    """A round official seal as a transparent PNG of ``size_px`` × ``size_px`` pixels: ring, the
    department's name along the upper arc (each character turned to follow it), a star in the
    centre, ``seal_type`` (e.g. 审批专用章) below the star."""
    name = "".join((department_name or "").split())
    purpose = "".join((seal_type or "").split())
    if not name:
        raise DomainError(_l("A seal image needs the department's name."))
    if not 64 <= size_px <= 2048:
        raise DomainError(_l("A seal image is 64 to 2048 pixels wide."))
    s = size_px * SUPERSAMPLE
    c = s / 2
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    ring = s * 0.035
    outer = s / 2 - ring / 2 - s * 0.01
    draw.ellipse((c - outer - ring / 2, c - outer - ring / 2, c + outer + ring / 2, c + outer + ring / 2),
                 outline=RED, width=max(int(ring), 1))

    # The name: characters evenly spread over the upper arc, each turned so its top faces outwards.
    n = len(name)
    arc = (outer - ring - s * 0.08) * math.radians(ARC_DEGREES)
    char_size = min(s * 0.13, arc / n * 0.85)
    font = _font(char_size)
    radius = outer - ring / 2 - s * 0.03 - char_size * 0.55
    step = ARC_DEGREES / (n - 1) if n > 1 else 0
    for i, ch in enumerate(name):
        theta = -ARC_DEGREES / 2 + i * step if n > 1 else 0.0
        x = c + radius * math.sin(math.radians(theta))
        y = c - radius * math.cos(math.radians(theta))
        tile = _glyph(ch, font, theta)
        img.alpha_composite(tile, (int(x - tile.width / 2), int(y - tile.height / 2)))

    _star(draw, c, c, s * 0.16)

    if purpose:
        width = s * 0.56
        size = min(s * 0.085, width / len(purpose))
        pfont = _font(size)
        draw.text((c, c + s * 0.27), purpose, font=pfont, fill=RED, anchor="mm")

    out = io.BytesIO()
    img.resize((size_px, size_px), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
    return out.getvalue()


def load_uploaded_image(data: bytes) -> bytes:
    """An operator's own stamp: a PNG within IDP_SEAL_IMAGE_MAX_BYTES and IDP_SEAL_IMAGE_MAX_PIXELS,
    decoded by Pillow and written again as an RGBA PNG (nothing of the upload but its pixels is kept).
    Only PNG: a stamp needs a transparent background, which JPEG cannot carry."""
    cfg = current_app.config
    if not data:
        raise DomainError(_l("The seal image is empty."))
    if len(data) > cfg["SEAL_IMAGE_MAX_BYTES"]:
        raise DomainError(_l("The seal image is larger than %(limit)s bytes.", limit=cfg["SEAL_IMAGE_MAX_BYTES"]))
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            width, height = im.size
            if width * height > cfg["SEAL_IMAGE_MAX_PIXELS"] or min(width, height) < 16:
                raise DomainError(_l("The seal image must be at least 16 pixels wide and high, with at most %(limit)s pixels.",
                                     limit=cfg["SEAL_IMAGE_MAX_PIXELS"]))
            im.load()
            rgba = im.convert("RGBA")
    except DomainError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DomainError(_l("The seal image must be a PNG file (with a transparent background)."),
                          detail=type(exc).__name__) from None
    out = io.BytesIO()
    rgba.save(out, format="PNG", optimize=True)
    return out.getvalue()
