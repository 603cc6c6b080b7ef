"""Text normalisation before analysis and storage.

``clean_text`` keeps what the author wrote (including traditional characters;
conversion to simplified comes with the NLP issue) and removes what the site
added: runs of whitespace, and boilerplate or spam lines such as
"已阅读5页，还剩13页未读" or copyright footers.
"""

from __future__ import annotations

import re
import unicodedata

# Lines that a site or a content farm adds around an article, never the author.
_BOILERPLATE = [
    re.compile(p)
    for p in (
        r"已阅读\s*\d+\s*页",
        r"还剩\s*\d+\s*页未读",
        r"^(版权所有|copyright|©)",
        r"(?i)all rights reserved",
        r"^免责声明",
        r"扫码(关注|下载)",
        r"(点击|立即)下载\s*app",
        r"^(上一篇|下一篇)[:：]",
        r"^(相关推荐|猜你喜欢|热门文章)",
        r"^分享到[:：]?",
        r"(?i)^(加微信|加v|\+v|vx)[:：]?\s*\w+",
    )
]


def is_boilerplate(line: str) -> bool:
    """True if ``line`` is site chrome or spam rather than the author's text."""
    stripped = line.strip()
    return any(p.search(stripped) for p in _BOILERPLATE)


def clean_text(text: str) -> str:
    """Normalise Unicode (NFC), collapse whitespace per line and drop boilerplate lines.

    Paragraph breaks are kept as single newlines; empty lines are removed. Returns
    ``""`` for text that is only boilerplate.
    """
    text = unicodedata.normalize("NFC", text).replace("\u00a0", " ").replace("\u3000", " ")
    lines = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if line and not is_boilerplate(line):
            lines.append(line)
    return "\n".join(lines)


def fold_width(text: str) -> str:
    """Full-width ASCII letters, digits and punctuation → half-width (for matching)."""
    return unicodedata.normalize("NFKC", text)
