"""Seal stamps: generated in the traditional form (red ring, name on the upper arc, star, purpose)
on a transparent background, or an operator's PNG normalised; no font → a clear error."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from idp.errors import DomainError

DEPT = "本溪市市场监督管理局"


def red(px) -> bool:
    r, g, b, a = px
    return a > 200 and r > 150 and g < 90 and b < 90


@pytest.fixture
def render(app):
    from idp.seals.image import _resolve, render_seal

    _resolve.cache_clear()
    yield render_seal
    _resolve.cache_clear()


def test_generated_stamp_is_a_transparent_red_seal(render):
    png = render(DEPT, "审批专用章", size_px=400)
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.mode == "RGBA" and im.size == (400, 400)
    for corner in ((0, 0), (399, 0), (0, 399), (399, 399), (20, 20), (380, 380)):
        assert im.getpixel(corner)[3] == 0, corner  # outside the ring: fully transparent
    assert red(im.getpixel((200, 200)))  # the star's centre
    ring = [im.getpixel(p) for p in ((200, 6), (200, 393), (6, 200), (393, 200))]
    assert all(red(p) for p in ring), ring  # the ring at top, bottom, left, right
    colours = {px[:3] for px in im.get_flattened_data() if px[3] == 255}
    assert colours and all(red((*c, 255)) for c in colours)
    # The name runs along the upper arc: ink in the band just inside the ring, at the top.
    band = [im.getpixel((x, y)) for x in range(150, 250) for y in range(30, 80)]
    assert sum(red(p) for p in band) > 200


def test_different_names_and_types_give_different_stamps(render):
    a = render(DEPT, "审批专用章")
    assert render(DEPT, "审批专用章") == a  # deterministic
    assert render("本溪市人力资源和社会保障局", "审批专用章") != a
    assert render(DEPT, "合同专用章") != a


def test_missing_configured_font_is_a_clear_error(app, render):
    app.config["SEAL_FONT"] = "/nonexistent/font.ttc"
    with pytest.raises(DomainError) as exc:
        render(DEPT, "审批专用章")
    assert exc.value.code == "seal_font_missing" and "IDP_SEAL_FONT" in exc.value.message
    assert "/nonexistent/font.ttc" in exc.value.message


def test_no_cjk_font_anywhere_names_the_package_and_the_setting(app, render, monkeypatch):
    monkeypatch.setattr("idp.seals.image.KNOWN_FONTS", ("/nonexistent/a.ttc",))
    monkeypatch.setattr("idp.seals.image._fc_match", lambda: None)
    with pytest.raises(DomainError) as exc:
        render(DEPT, "审批专用章")
    assert "fonts-noto-cjk" in exc.value.message and "IDP_SEAL_FONT" in exc.value.message


def test_configured_collection_uses_its_simplified_chinese_face(app, render):
    from idp.seals.image import font_file

    app.config["SEAL_FONT"] = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
    path, index = font_file()
    from PIL import ImageFont

    assert ImageFont.truetype(path, 10, index=index).getname()[0].endswith(" SC")


def _png(size=(64, 64), mode="RGBA", fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (215, 38, 30, 128) if mode == "RGBA" else (215, 38, 30)).save(out, format=fmt)
    return out.getvalue()


def test_uploaded_png_is_normalised_to_rgba(app):
    from idp.seals.image import load_uploaded_image

    out = Image.open(io.BytesIO(load_uploaded_image(_png(mode="P"))))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (64, 64)
    out = Image.open(io.BytesIO(load_uploaded_image(_png())))
    assert out.getpixel((1, 1)) == (215, 38, 30, 128)


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"not an image at all", "PNG"),
    (_png(fmt="JPEG", mode="RGB"), "PNG"),
    (_png()[:60], "PNG"),  # truncated
    (_png(size=(8, 8)), "16 pixels"),
    (_png(size=(3000, 1500)), "pixels"),
])
def test_bad_uploads_are_refused_clearly(app, data, words):
    from idp.seals.image import load_uploaded_image

    with pytest.raises(DomainError) as exc:
        load_uploaded_image(data)
    assert words in exc.value.message


def test_upload_size_is_bounded(app):
    from idp.seals.image import load_uploaded_image

    app.config["SEAL_IMAGE_MAX_BYTES"] = 100
    with pytest.raises(DomainError, match="larger than 100 bytes"):
        load_uploaded_image(_png())
