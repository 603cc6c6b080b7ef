"""The local demo web: forum, news + RSS, complaint platform and ticket export, playing a scenario.

``python -m yuqing.demo`` serves it; :class:`yuqing.demo.server.DemoWeb` embeds it.
"""
