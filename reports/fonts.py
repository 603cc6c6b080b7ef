"""The CJK font every chart, word cloud and PDF uses.

Chinese text rendered with a Latin-only font turns into boxes ("tofu"), which
in a report for head office is worse than no chart. The font ships as a
PyPI dependency (``noto-cjk-sans-otc``, Noto Sans CJK, SIL OFL), so no machine
needs system fonts; ``YUQING_CJK_FONT`` may point at another file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


class FontMissing(RuntimeError):
    """No usable CJK font: the message says where we looked."""


@cache
def cjk_font_path() -> Path:
    """Path of a font file that has Simplified Chinese glyphs.

    Order: ``YUQING_CJK_FONT`` (must exist), then the bundled Noto Sans CJK.
    Raises :class:`FontMissing` naming what was tried; never falls back to a
    font that would render Chinese as boxes.
    """
    override = os.environ.get("YUQING_CJK_FONT", "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FontMissing(f"YUQING_CJK_FONT={override!r} is not a file")
        return path
    try:
        import noto_cjk_sans_otc
    except ImportError as exc:  # pragma: no cover - a broken install
        raise FontMissing(
            "the bundled CJK font package noto-cjk-sans-otc is not installed "
            "(reinstall yuqing, or set YUQING_CJK_FONT to a .ttf/.otf/.ttc file)"
        ) from exc
    path = Path(str(noto_cjk_sans_otc.FONT_PATH))
    if not path.is_file():  # pragma: no cover - a broken install
        raise FontMissing(f"bundled CJK font missing at {path}")
    return path


# Name-table language ids of Simplified Chinese (zh-CN, zh-SG): the face of a
# collection that names itself in one of them is the SC face.
_SC_LANG_IDS = frozenset({0x0804, 0x1004})


@dataclass(frozen=True)
class CjkFace:
    """One face of the CJK font: the file, its index in a collection, and its family name."""

    path: Path
    index: int
    family: str


def _pick_sc_face(path: Path) -> CjkFace:
    from fontTools.ttLib import TTCollection  # type: ignore[import-untyped]

    with TTCollection(str(path), lazy=True) as collection:
        faces = []
        for index, font in enumerate(collection.fonts):
            names = font["name"]
            family = str(names.getDebugName(1) or "")
            langs = {r.langID for r in names.names if r.nameID == 1 and r.platformID == 3}
            faces.append((index, family, langs))
    # Proportional before monospaced ("Noto Sans Mono CJK SC"): body text and charts.
    ranked = sorted(faces, key=lambda f: ("mono" in f[1].lower(), f[0]))
    for index, family, langs in ranked:
        if langs & _SC_LANG_IDS or family.endswith((" SC", " GB")):
            return CjkFace(path, index, family)
    raise FontMissing(
        f"{path} is a font collection without a Simplified Chinese face "
        f"(faces: {', '.join(f[1] for f in faces)}); set YUQING_CJK_FONT to an SC font"
    )


@cache
def cjk_face() -> CjkFace:
    """The Simplified Chinese face of :func:`cjk_font_path`.

    A TrueType/OpenType collection (``.ttc``/``.otc``, like the bundled Noto
    Sans CJK with JP, KR, SC, TC, HK faces in that order) is searched by its
    name table: the face whose family is named in zh-CN, preferring the
    proportional one. Face 0 of the bundled file is *Japanese*: the same code
    points with Japanese glyph shapes, which is why the index matters. A
    single-face file gives index 0. Raises :class:`FontMissing`.
    """
    path = cjk_font_path()
    with path.open("rb") as handle:
        is_collection = handle.read(4) == b"ttcf"
    if is_collection:
        return _pick_sc_face(path)
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    with TTFont(str(path), lazy=True) as font:
        family = str(font["name"].getDebugName(1) or path.stem)
    return CjkFace(path, 0, family)


@cache
def cjk_face_file() -> Path:
    """A single-face font file of :func:`cjk_face`, for libraries that take only a path.

    Pillow-based code (the ``wordcloud`` package) opens face 0 of a collection,
    which for the bundled font is the Japanese face. For a collection this
    extracts the SC face once into ``$XDG_CACHE_HOME/yuqing/fonts`` (keyed by
    the source's size and mtime, written atomically so concurrent processes
    never read half a file); a single-face font is returned as is.
    """
    face = cjk_face()
    with face.path.open("rb") as handle:
        if handle.read(4) != b"ttcf":
            return face.path
    stat = face.path.stat()
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = (
        cache_root
        / "yuqing"
        / "fonts"
        / f"{face.path.stem}-{face.index}-{stat.st_size}-{int(stat.st_mtime)}.otf"
    )
    if target.is_file():
        return target
    from fontTools.ttLib import TTCollection

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    with TTCollection(str(face.path), lazy=True) as collection:
        collection.fonts[face.index].save(str(partial))
    os.replace(partial, target)
    return target
