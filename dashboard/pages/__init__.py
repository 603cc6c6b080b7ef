"""Dashboard pages: one module per page, each with a ``render()`` for ``dashboard.app``."""
