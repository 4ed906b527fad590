"""French calendar words, shared by the adapters (reading dates on pages) and the site
(writing them). The simulator keeps its own copy on purpose: it must never share
constants with the adapters it tests."""

from __future__ import annotations

import re
from datetime import date, datetime, time

from observatoire.clock import PARIS

MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
             "septembre", "octobre", "novembre", "décembre")  # fmt: skip
#: "mars" -> 3
MONTH_NUMBER = {name: index + 1 for index, name in enumerate(MONTHS_FR)}

#: "jeudi 28 mai 2026 à 13:30", "12 mai 2026 - 09h30", "1er juin 2026 à 9:00"
SLOT_TIME = re.compile(
    r"(\d{1,2})(?:er)? (" + "|".join(MONTHS_FR) + r") (\d{4})\D{0,20}?(\d{1,2})[:h](\d{2})",
    re.I,
)


def parse_slots(text: str) -> list[datetime]:
    """Every dated slot written in French in `text`, as Paris times, sorted, unique."""
    found = set()
    for m in SLOT_TIME.finditer(text):
        day = date(int(m.group(3)), MONTH_NUMBER[m.group(2).lower()], int(m.group(1)))
        found.add(datetime.combine(day, time(int(m.group(4)), int(m.group(5))), PARIS))
    return sorted(found)
