"""The department map: a choropleth as inline SVG, every department a keyboard-reachable
link, overseas departments as labelled insets and a zoom inset for Paris and its inner
suburbs. Built from the CC BY 4.0 map of MapSVG / svg-maps (modified: colours, links,
insets), whose credit the page shows.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

PATH = re.compile(
    r'<path\s+id="(?P<id>[0-9AB]{2})"\s+aria-label="(?P<label>[^"]*)"\s+'
    r'd="(?P<d>[^"]+)"\s*/>',
    re.S,
)
OVERSEAS = ("971", "972", "973", "974", "976")
PARIS_AREA = ("75", "92", "93", "94")
#: Share with no way to book → class; the legend uses the same bounds.
#: Bounds are half-open, and the legend says so: 50 % exactly is in "50 % à moins de 75 %".
BUCKETS = (
    (0.25, "q0", "moins de 25 %"),
    (0.5, "q1", "de 25 % à moins de 50 %"),
    (0.75, "q2", "de 50 % à moins de 75 %"),
    (0.9, "q3", "de 75 % à moins de 90 %"),
    (1.01, "q4", "90 % ou plus"),
)
#: A department whose every booking link was deactivated by the prefecture.
RETIRED_CLASS = ("qr", "lien désactivé par la préfecture")
OVERSEAS_NAMES = {
    "971": "Guadeloupe",
    "972": "Martinique",
    "973": "Guyane",
    "974": "La Réunion",
    "976": "Mayotte",
}
CREDIT = (
    "Carte : MapSVG (mapsvg.com), adaptée par Victor Cazanave (svg-maps), licence "
    "CC BY 4.0 ; modifiée (couleurs, liens, encarts)."
)


@dataclass(frozen=True)
class MapValue:
    share: float | None  # None: no valid probe
    text: str  # accessible label, e.g. "62 %"
    href: str | None
    cls: str | None = None  # overrides the share's class (e.g. "qr": link retired)


@cache
def department_paths() -> dict[str, tuple[str, str]]:
    svg = resources.files("observatoire.data.map").joinpath("france.departments.svg")
    return {m["id"]: (m["label"], m["d"]) for m in PATH.finditer(svg.read_text("utf-8"))}


def bucket(share: float | None) -> str:
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return "qn"
    for bound, name, _ in BUCKETS:
        if share < bound:
            return name
    return BUCKETS[-1][1]


def _shape(code: str, name: str, value: MapValue | None, shape: str) -> str:
    label = f"{code} {name} : {value.text if value else 'pas de mesure'}"
    cls = (value.cls if value else None) or bucket(value.share if value else None)
    inner = f"{shape.replace('CLASS', cls)}<title>{html.escape(label)}</title>"
    if value and value.href:
        return f'<a href="{html.escape(value.href)}" aria-label="{html.escape(label)}">{inner}</a>'
    return f'<g role="img" aria-label="{html.escape(label)}">{inner}</g>'


def render_map(values: dict[str, MapValue], names: dict[str, str], title: str) -> str:
    paths = department_paths()
    body = []
    for code, (label, d) in paths.items():
        body.append(
            _shape(
                code, names.get(code, label), values.get(code), f'<path class="dep CLASS" d="{d}"/>'
            )
        )
    # Paris and the inner suburbs, enlarged 5x in a box over the Channel (top left).
    zoom = []
    for code in PARIS_AREA:
        label, d = paths[code]
        zoom.append(
            _shape(
                code, names.get(code, label), values.get(code), f'<path class="dep CLASS" d="{d}"/>'
            )
        )
    # Overseas departments: squares at the bottom left, each with its code and name (the
    # caption under the map names them too, for phones where this text would be tiny).
    insets = []
    for i, code in enumerate(OVERSEAS):
        x = 8 + i * 70
        shape = (
            f'<rect class="dep CLASS" x="{x + 9}" y="512" width="44" height="44" rx="4"/>'
            f'<text x="{x + 31}" y="539" text-anchor="middle" class="inset-label">'
            f"{code}</text>"
            f'<text x="{x + 31}" y="572" text-anchor="middle" class="inset-label">'
            f"{html.escape(OVERSEAS_NAMES.get(code, names.get(code, code)))}</text>"
        )
        insets.append(_shape(code, names.get(code, code), values.get(code), shape))
    return (
        f'<svg class="map" viewBox="0 0 613 585" role="group" aria-label="{html.escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        f'<g class="metro">{"".join(body)}</g>'
        '<g class="zoom-frame"><rect x="8" y="8" width="136" height="124" rx="4"/>'
        '<text x="76" y="127" text-anchor="middle" class="inset-label">Paris et petite '
        "couronne</text></g>"
        '<g class="zoom" transform="translate(76 62) scale(5) translate(-314 -144.3)">'
        f"{''.join(zoom)}</g>"
        f'<g class="overseas">{"".join(insets)}</g></svg>'
    )


def legend() -> list[tuple[str, str]]:
    return (
        [(name, text) for _, name, text in BUCKETS]
        + [("qn", "pas de mesure valide")]
        + [RETIRED_CLASS]
    )
