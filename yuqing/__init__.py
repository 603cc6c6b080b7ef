"""yuqing — reputational-risk and public-opinion (舆情) monitoring for a bank.

This package holds the entry points: the ``yuqing`` command (:mod:`yuqing.cli`),
the one place that picks adapters from settings (:mod:`yuqing.bootstrap`) and
the local demo web (:mod:`yuqing.demo`).
"""

__version__ = "0.1.0"
