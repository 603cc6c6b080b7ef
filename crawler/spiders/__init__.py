"""Spiders, one per kind of source: ``rss`` (RSS/Atom feeds) and ``site`` (list → detail HTML)."""
