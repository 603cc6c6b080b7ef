"""Does a post talk about the watched bank? Which branch, which product?"""

from __future__ import annotations

from core.settings import Watchlist
from nlp.normalize import simplify_and_fold


def _canonical(text: str) -> str:
    """Half-width, simplified, lower-case: 瀾海銀行 and 澜海银行 are one name."""
    return simplify_and_fold(text).lower()


class MentionMatcher:
    """Match watched entities in text, honouring exclusions (澜海公园 is not 澜海银行).

    Branch and product names count as a mention of the bank: a post about
    "澜海稳盈3号" is about the bank even if it never names it.
    """

    def __init__(self, watchlist: Watchlist) -> None:
        self._watchlist = watchlist
        self._exclusions = sorted(
            (_canonical(e) for e in watchlist.exclusions if e.strip()),
            key=len,
            reverse=True,
        )
        self._bank = [_canonical(a) for a in watchlist.bank.all_names if a.strip()]
        self._named = [
            (entity.name, [_canonical(a) for a in entity.all_names if a.strip()])
            for entity in [*watchlist.branches, *watchlist.products]
        ]

    @property
    def bank_names(self) -> list[str]:
        """The watched bank's own name and aliases (what the models never see)."""
        return list(self._watchlist.bank.all_names)

    @property
    def vocabulary(self) -> list[str]:
        """Every watched name and alias (to teach the segmenter whole words)."""
        names = self.bank_names
        for entity in [*self._watchlist.branches, *self._watchlist.products]:
            names.extend(entity.all_names)
        return names

    def match(self, text: str) -> list[str]:
        """Watched entity names mentioned in ``text``: the bank first, then branches, products.

        Returns ``[]`` when the text does not mention the bank (only an exclusion
        such as 澜海公园, or nothing at all).
        """
        return self.match_folded(simplify_and_fold(text))

    def match_folded(self, folded: str) -> list[str]:
        """:meth:`match` of text already passed through ``nlp.normalize.simplify_and_fold``."""
        folded = folded.lower()
        for phrase in self._exclusions:
            # Blank out excluded phrases so their aliases cannot match inside them.
            folded = folded.replace(phrase, " " * len(phrase))
        found = [name for name, aliases in self._named if any(a in folded for a in aliases)]
        bank_named = any(a in folded for a in self._bank)
        if not bank_named and not found:
            return []
        return [self._watchlist.bank.name, *found]
