"""The volunteer's pseudonym: the only thing an assisted probe records about the
person who answered the captcha. It must say "who, within the association" for the
record, never who they are: no spaces (no "first last"), no e-mail, no phone number."""

from __future__ import annotations

import re

PSEUDONYM = re.compile(r"^[^\W_][\w.-]{1,39}$")
DIGIT_RUN = re.compile(r"\d{5,}")


class BadPseudonym(ValueError):
    pass


def check_pseudonym(value: str) -> str:
    """The pseudonym, stripped; BadPseudonym (with a French message) when refused."""
    value = value.strip()
    if not PSEUDONYM.match(value):
        raise BadPseudonym(
            "Un pseudonyme de 2 à 40 caractères : lettres, chiffres, point, tiret ou "
            "tiret bas, sans espace (par exemple « permanence-lundi »)."
        )
    if DIGIT_RUN.search(value):
        raise BadPseudonym("Pas de numéro de téléphone ni d'identifiant : un pseudonyme suffit.")
    return value
