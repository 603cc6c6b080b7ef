"""The CJK font helpers pick the Simplified Chinese face, not face 0 of the collection."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageFont

from reports import fonts


def test_face_file_is_the_sc_face_extracted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fonts.cjk_face_file.cache_clear()
    try:
        path = fonts.cjk_face_file()
        assert path.is_relative_to(tmp_path)
        family, _style = ImageFont.truetype(str(path), 20).getname()
        assert family == fonts.cjk_face().family
        assert family.endswith("SC")
        # A second process finds the cached file instead of extracting again.
        fonts.cjk_face_file.cache_clear()
        mtime = path.stat().st_mtime_ns
        assert fonts.cjk_face_file() == path
        assert path.stat().st_mtime_ns == mtime
    finally:
        fonts.cjk_face_file.cache_clear()


def test_override_that_is_not_a_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_CJK_FONT", "/nonexistent/font.ttf")
    fonts.cjk_font_path.cache_clear()
    try:
        with pytest.raises(fonts.FontMissing, match="YUQING_CJK_FONT"):
            fonts.cjk_font_path()
    finally:
        fonts.cjk_font_path.cache_clear()
