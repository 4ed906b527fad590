"""French calendar words, shared by the adapters (reading dates on pages) and the site
(writing them). The simulator keeps its own copy on purpose: it must never share
constants with the adapters it tests."""

from __future__ import annotations

MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
             "septembre", "octobre", "novembre", "décembre")  # fmt: skip
#: "mars" -> 3
MONTH_NUMBER = {name: index + 1 for index, name in enumerate(MONTHS_FR)}
