"""Monthly statistics, episodes without any slot, and La Cimade's classes.

SQL does the heavy grouping: per target and Europe/Paris day it returns one row of
outcome counts; per target and month a histogram of lead times; per target the runs of
probes without any slot. Those results are small (targets × days), whatever the number
of probes, and pandas only shapes them. Never is one row per probe loaded into memory.

Day and month bounds are computed in Europe/Paris (DST included: `clock`'s calendar
helpers, `rollups`' spans) and joined in SQL, so SQLite and PostgreSQL give the same
figures. The outcome lists and La Cimade's classes come from `outcomes`. Definitions
are published on the site's methodology page (`docs/methodology.md`):

- valid probes: `available`, `no_slot`, `procedure_missing`, `form_open`;
- no way to book: `no_slot` + `procedure_missing`; its share among valid probes comes
  with a 95 % Wilson score interval (`share_low`/`share_high`, naive: it treats every
  probe as independent) and a small-sample flag (< 30 valid probes). Consecutive probes
  of one page are not independent, so every row also carries a clustered interval
  (`share_low_cluster`/`share_high_cluster`): a seeded Bayesian bootstrap that resamples
  whole booking pages (targets) when the row has at least 5 of them, and whole days
  otherwise (`cluster_unit`, `clusters`). The seed comes from the month and the pages of
  the row, so one page's row and its one-page department give the same bounds, build
  after build;
- the national rows add the unweighted mean and median of the departments' shares
  beside the pooled share (one department, one vote), and every row says how many
  departments and pages it rests on (`departments_observed`, `targets_observed`);
- `blocked`, `error`, `unrecognized` are coverage, published beside the figures and
  never folded into them;
- assisted probes (a volunteer answered the captcha) count in every figure like any
  probe, but not in coverage: their cadence is the volunteers'. They are counted apart
  (`probes_assisted`), and captcha-first targets expect no automatic probe;
- unreliable: a target-month whose `unrecognized` probes exceed 10 % of all its probes
  (every outcome, automatic and assisted: unrecognized / probes > 0.10). An unrecognized
  page is not neutral: when slot pages go unrecognized, "valid" keeps only the no-slot
  pages and the share with no way to book climbs (a test site read 100 % for 50 %).
  Every row carries its own unrecognized share and flag, its target-months
  (`target_months`) and how many of them are unreliable (`unreliable_target_months`);
- a day with no slot at all: a day with valid probes, none of which found a way to book;
- lead time: days from the probe to the first slot offered (`available` probes);
- an episode: a run of valid probes of one target finding no way to book, from the first
  of them to the next probe that found one (ongoing if none yet).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, text

from observatoire.clock import paris_date, paris_month
from observatoire.db.types import UTCDateTime
from observatoire.outcomes import CIMADE_LABELS, NO_WAY_TO_BOOK, VALID_OUTCOMES, Outcome
from observatoire.outcomes import values as outcome_values
from observatoire.platforms import PLATFORMS
from observatoire.record.rollups import (
    Span,
    days_between,
    paris_months,
    probe_time_range,
    spans_cte,
)

OUTCOME_COLUMNS = outcome_values(Outcome)
VALID_COLUMNS = outcome_values(VALID_OUTCOMES)
NO_WAY_COLUMNS = outcome_values(NO_WAY_TO_BOOK)
UNRECOGNIZED = Outcome.UNRECOGNIZED.value
LEVELS: dict[str, list[str]] = {
    "target": ["target_id", "department", "department_name", "procedure", "procedure_name"],
    "department_procedure": ["department", "department_name", "procedure", "procedure_name"],
    "department": ["department", "department_name"],
    "procedure": ["procedure", "procedure_name"],
    "national": [],
}
SMALL_SAMPLE = 30
#: Version of the method behind the published figures (cited with every figure). 2: the
#: clustered interval, the scope of each figure and the month status were added.
METHOD_VERSION = "2"
#: Bayesian bootstrap draws for the clustered interval, and the fewest pages a row needs
#: for pages to be the resampled unit (below, days are).
BOOTSTRAP_DRAWS = 1000
MIN_TARGET_CLUSTERS = 5
#: A target-month is unreliable when unrecognized / probes exceeds this (strictly).
UNRELIABLE_SHARE = Fraction(1, 10)
#: La Cimade's published classes, in its order (defined once, in `outcomes.CIMADE`).
CIMADE_CLASSES = CIMADE_LABELS


def month_of(when: datetime) -> str:
    return paris_month(when)


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def episodes(engine: Engine, now: datetime | None = None) -> pd.DataFrame:
    """Runs without any slot, per target (from the `episodes` rollup): start, last, end
    (the next probe that found a way to book; None if ongoing), probes in the run, and the
    duration in days (to `now` if ongoing)."""
    sql = text(
        "SELECT target_id, start_at AS start, last_at AS last, end_at, probes FROM episodes "
        "ORDER BY target_id, start_at"
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sql)]
    frame = pd.DataFrame(rows, columns=["target_id", "start", "last", "end_at", "probes"])
    # Times converted column-wise (SQLite gives naive-UTC text, PostgreSQL aware values):
    # a site build reads every episode, and one conversion per value was its slowest step.
    for col in ("start", "last", "end_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="mixed")
    now = now or datetime.now(UTC)
    frame["ongoing"] = frame["end_at"].isna()
    # Same unit and zone as the column: pandas will refuse a mismatched fill value.
    ends = frame["end_at"].fillna(pd.Timestamp(now).as_unit(frame["end_at"].dt.unit))
    frame["duration_days"] = (ends - frame["start"]).dt.total_seconds() / 86400
    return frame


def targets_frame(engine: Engine) -> pd.DataFrame:
    sql = text(
        "SELECT id AS target_id, department, department_name, procedure, procedure_name, "
        "platform, interval_minutes, enabled, created_at FROM targets"
    ).columns(created_at=UTCDateTime())
    with engine.connect() as conn:
        rows = conn.execute(sql).mappings().all()
    return pd.DataFrame(
        rows,
        columns=[
            "target_id",
            "department",
            "department_name",
            "procedure",
            "procedure_name",
            "platform",
            "interval_minutes",
            "enabled",
            "created_at",
        ],
    )


def expected_probes(targets: pd.DataFrame, months: list[Span], until: datetime) -> pd.DataFrame:
    """Probes the cadence called for, per target and month: from the target's creation
    (or the month's start) to the month's end (or `until`), divided by its interval.
    Captcha-first targets expect none: only volunteers observe them, when they can."""
    # Read when called: the platform registry loads the adapters, which this module
    # must not need at import time.
    captcha_first = {name for name, spec in PLATFORMS.items() if spec.captcha_first}
    rows = []
    for t in targets.itertuples():
        if not t.enabled or t.platform in captcha_first:
            continue
        for m in months:
            start = max(m.start, t.created_at)
            end = min(m.end, until)
            if end <= start:
                continue
            minutes = (end - start).total_seconds() / 60
            rows.append((t.target_id, m.label, minutes / t.interval_minutes))
    return pd.DataFrame(rows, columns=["target_id", "month", "expected"])


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    if len(values) == 0 or weights.sum() == 0:
        return math.nan
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    cumulative = np.cumsum(weights)
    cutoff = q * cumulative[-1]
    return float(values[np.searchsorted(cumulative, cutoff, side="left")])


@dataclass
class StatsInput:
    """The small SQL results every level is computed from."""

    targets: pd.DataFrame
    daily: pd.DataFrame
    leads: pd.DataFrame
    longest: pd.DataFrame  # target_id, month, longest_days
    months: list[Span]
    until: datetime
    engine: Engine | None = None
    _episodes: pd.DataFrame | None = None
    #: Clustered intervals already drawn, by (month, unit, pages): shared by every level.
    _bootstrap: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def episodes(self) -> pd.DataFrame:
        """Every episode (loaded on first use: the site and the export need them, the
        monthly figures do not)."""
        if self._episodes is None:
            self._episodes = (
                episodes(self.engine, self.until) if self.engine is not None else pd.DataFrame()
            )
        return self._episodes

    @classmethod
    def load(cls, engine: Engine, now: datetime | None = None) -> StatsInput:
        """Read the rollups (small, whatever the number of probes)."""
        targets = targets_frame(engine)
        span = probe_time_range(engine)
        until = now or (span[1] if span else datetime.now(UTC))
        if span is None:
            empty = pd.DataFrame()
            return cls(targets, empty, empty, empty, [], until, engine)
        columns = ["target_id", "day", *OUTCOME_COLUMNS, "assisted", "manual"]
        with engine.connect() as conn:
            daily = pd.DataFrame(
                # Plain tuples: pandas probes a Row by column name, an exception per cell.
                [
                    tuple(r)
                    for r in conn.execute(text(f"SELECT {', '.join(columns)} FROM probe_days"))
                ],
                columns=columns,
            )
            leads = pd.DataFrame(
                [
                    tuple(r)
                    for r in conn.execute(
                        text("SELECT target_id, month, cimade, lead_days, probes FROM probe_leads")
                    )
                ],
                columns=["target_id", "month", "cimade", "lead_days", "probes"],
            )
        leads["lead_days"] = leads["lead_days"].astype("float64").where(leads["lead_days"] >= 0)
        months = paris_months(*span)
        until = max(until, span[1])
        return cls(
            targets, daily, leads, longest_episodes(engine, months, until), months, until, engine
        )


def monthly_stats(
    engine: Engine, level: str = "department", data: StatsInput | None = None
) -> pd.DataFrame:
    """One row per (level keys, month): probes expected and made, coverage, counts per
    outcome, valid probes, the share with no way to book and its 95 % interval, days
    observed and days with no slot at all, lead-time median and 90th percentile (days),
    the longest episode without any slot touching the month (days), La Cimade's classes
    and a small-sample flag."""
    keys = LEVELS[level]
    data = data or StatsInput.load(engine)
    columns = [
        *keys,
        "month",
        "probes_expected",
        "probes",
        "probes_assisted",
        "probes_manual",
        "coverage",
        *OUTCOME_COLUMNS,
        "valid",
        "no_way",
        "share_no_way",
        "share_low",
        "share_high",
        "small_sample",
        "share_low_cluster",
        "share_high_cluster",
        "cluster_unit",
        "clusters",
        "departments_observed",
        "targets_observed",
        *(["departments_mean_share", "departments_median_share"] if level == "national" else []),
        "unrecognized_share",
        "unreliable",
        "target_months",
        "unreliable_target_months",
        "days_observed",
        "days_without_slot",
        "lead_days_median",
        "lead_days_p90",
        "longest_episode_days",
        *[f"cimade_{c}" for c in CIMADE_CLASSES],
    ]
    if data.daily.empty:
        return pd.DataFrame(columns=columns)
    meta = data.targets.set_index("target_id")
    daily = data.daily.join(meta[[k for k in LEVELS["target"] if k != "target_id"]], on="target_id")
    daily["month"] = daily["day"].str.slice(0, 7)
    group = [*keys, "month"]

    made = (
        daily.groupby(group, dropna=False)[[*OUTCOME_COLUMNS, "assisted", "manual"]]
        .sum()
        .reset_index()
    )
    made["probes"] = made[OUTCOME_COLUMNS].sum(axis=1)
    made["probes_assisted"] = made.pop("assisted").astype("int64")
    made["probes_manual"] = made.pop("manual").astype("int64")
    made["valid"] = made[VALID_COLUMNS].sum(axis=1)
    made["no_way"] = made[NO_WAY_COLUMNS].sum(axis=1)
    intervals = [
        wilson(int(nw), int(v)) for nw, v in zip(made["no_way"], made["valid"], strict=True)
    ]
    made["share_no_way"] = [
        nw / v if v else math.nan for nw, v in zip(made["no_way"], made["valid"], strict=True)
    ]
    made["share_low"] = [i[0] for i in intervals]
    made["share_high"] = [i[1] for i in intervals]
    made["small_sample"] = made["valid"] < SMALL_SAMPLE
    made["unrecognized_share"] = made[UNRECOGNIZED] / made["probes"].where(made["probes"] > 0)
    made["unreliable"] = [
        unreliable_target_month(int(u), int(p))
        for u, p in zip(made[UNRECOGNIZED], made["probes"], strict=True)
    ]
    made = made.merge(_unreliable_target_months(daily, group), on=group, how="left")
    for col in ("target_months", "unreliable_target_months"):
        made[col] = made[col].fillna(0).astype("int64")

    # Days: aggregate the targets of a group per day first.
    per_day = daily.groupby([*keys, "month", "day"], dropna=False)[VALID_COLUMNS].sum()
    per_day["valid"] = per_day[VALID_COLUMNS].sum(axis=1)
    per_day["no_way"] = per_day[NO_WAY_COLUMNS].sum(axis=1)
    observed = per_day[per_day["valid"] > 0]
    day_stats = (
        pd.DataFrame(
            {
                "days_observed": observed.groupby(group, dropna=False).size(),
                "days_without_slot": observed[observed["no_way"] == observed["valid"]]
                .groupby(group, dropna=False)
                .size(),
            }
        )
        .fillna(0)
        .astype("int64")
        .reset_index()
    )
    out = made.merge(day_stats, on=group, how="left")
    for col in ("days_observed", "days_without_slot"):
        out[col] = out[col].fillna(0).astype("int64")

    # Expected probes and coverage.
    expected = expected_probes(data.targets, data.months, data.until)
    expected = expected.join(
        meta[[k for k in LEVELS["target"] if k != "target_id"]], on="target_id"
    )
    exp = expected.groupby(group, dropna=False)["expected"].sum().reset_index()
    out = out.merge(exp, on=group, how="left")
    out["probes_expected"] = out["expected"].fillna(0).round().astype("int64")
    # Assisted probes count in every figure, but not in coverage: their cadence is the
    # volunteers', not the robot's (they are published beside it).
    out["coverage"] = [
        (p - a - m) / e if e else math.nan
        for p, a, m, e in zip(
            out["probes"],
            out["probes_assisted"],
            out["probes_manual"],
            out["expected"].fillna(0),
            strict=True,
        )
    ]

    # Lead times and La Cimade's classes.
    leads = data.leads.join(meta[[k for k in LEVELS["target"] if k != "target_id"]], on="target_id")
    quantiles = {}
    for key, part in leads.dropna(subset=["lead_days"]).groupby(group, dropna=False):
        values = part["lead_days"].to_numpy(dtype=float)
        weights = part["probes"].to_numpy(dtype=float)
        quantiles[key if isinstance(key, tuple) else (key,)] = (
            _weighted_quantile(values, weights, 0.5),
            _weighted_quantile(values, weights, 0.9),
        )
    out["lead_days_median"] = [
        quantiles.get(tuple(r), (math.nan,))[0] for r in out[group].itertuples(index=False)
    ]
    out["lead_days_p90"] = [
        quantiles.get(tuple(r), (math.nan, math.nan))[1] for r in out[group].itertuples(index=False)
    ]
    cimade_columns = [f"cimade_{c}" for c in CIMADE_CLASSES]
    if not leads.empty:
        classes = leads.pivot_table(
            index=group, columns="cimade", values="probes", aggfunc="sum", fill_value=0
        ).reindex(columns=list(CIMADE_CLASSES), fill_value=0)
        classes.columns = cimade_columns
        out = out.merge(classes.reset_index(), on=group, how="left")
    for col in cimade_columns:
        out[col] = out[col].fillna(0).astype("int64") if col in out else 0

    # Longest episode touching each month (clipped to it).
    out["longest_episode_days"] = _longest_episodes(data, meta, keys, out[group])

    # Clustered interval and scope (pages and departments with a valid probe).
    out = out.merge(_cluster_columns(daily, group, data._bootstrap), on=group, how="left")
    for col in ("clusters", "departments_observed", "targets_observed"):
        out[col] = out[col].fillna(0).astype("int64")
    out["cluster_unit"] = out["cluster_unit"].fillna("")
    if level == "national":
        out = out.merge(_department_spread(daily), on="month", how="left")
    return out[columns].sort_values(group).reset_index(drop=True)


def cluster_interval(
    no_way: np.ndarray, valid: np.ndarray, key: str, draws: int = BOOTSTRAP_DRAWS
) -> tuple[float, float]:
    """95 % interval of sum(no_way) / sum(valid) that respects clustering: a Bayesian
    bootstrap (Rubin, 1981) over clusters (pages or days), each draw weighting every
    cluster by an Exp(1) variate, the bounds being the 2.5 and 97.5 percentiles of the
    draws. Seeded by `key`, so the same row gives the same bounds on every build; with
    fewer than 2 clusters nothing can be said about the spread between them (nan)."""
    keep = valid > 0
    no_way, valid = no_way[keep].astype(float), valid[keep].astype(float)
    if len(valid) < 2:
        return (math.nan, math.nan)
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    weights = np.random.default_rng(seed).standard_exponential(
        (draws, len(valid)), dtype=np.float32
    )
    shares = (weights @ no_way.astype(np.float32)) / (weights @ valid.astype(np.float32))
    # Order statistics (no interpolation): the 2.5th and 97.5th percentiles of the draws.
    lo, hi = round(0.025 * (draws - 1)), round(0.975 * (draws - 1))
    low, high = np.partition(shares, (lo, hi))[[lo, hi]]
    return (float(low), float(high))


def _slices(frame: pd.DataFrame, group: list[str]) -> tuple[pd.DataFrame, list[slice]]:
    """`frame` sorted by `group`, and the slice of each group (numpy-fast iteration)."""
    frame = frame.sort_values(group, kind="stable").reset_index(drop=True)
    codes = frame.groupby(group, sort=False, dropna=False).ngroup().to_numpy()
    cuts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(frame)]
    return frame, [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _cluster_columns(
    daily: pd.DataFrame, group: list[str], cache: dict[str, tuple[float, float]]
) -> pd.DataFrame:
    """Per group and month: the clustered bounds, the unit and number of clusters, and
    the departments and pages with at least one valid probe."""
    columns = [
        *group,
        "share_low_cluster",
        "share_high_cluster",
        "cluster_unit",
        "clusters",
        "departments_observed",
        "targets_observed",
    ]
    d = daily[list(dict.fromkeys([*group, "target_id", "department", "day"]))].copy()
    d["valid"] = daily[VALID_COLUMNS].sum(axis=1).to_numpy()
    d["no_way"] = daily[NO_WAY_COLUMNS].sum(axis=1).to_numpy()
    d = d[d["valid"] > 0]
    if d.empty:
        return pd.DataFrame(columns=columns)
    d, parts = _slices(d, group)
    target = d["target_id"].to_numpy()
    dept = d["department"].to_numpy()
    day = d["day"].to_numpy()
    valid = d["valid"].to_numpy(dtype=float)
    no_way = d["no_way"].to_numpy(dtype=float)
    keys = d[group].to_numpy()
    month_col = group.index("month")
    rows = []
    for part in parts:
        pages, page_index = np.unique(target[part], return_inverse=True)
        month = str(keys[part.start][month_col])
        if len(pages) >= MIN_TARGET_CLUSTERS:
            unit, index, n = "target", page_index, len(pages)
        else:
            days, index = np.unique(day[part], return_inverse=True)
            unit, n = "day", len(days)
        key = f"{month}|{unit}|{','.join(map(str, pages))}"
        if key not in cache:
            cache[key] = cluster_interval(
                np.bincount(index, weights=no_way[part], minlength=n),
                np.bincount(index, weights=valid[part], minlength=n),
                key,
            )
        low, high = cache[key]
        rows.append((*keys[part.start], low, high, unit, n, len(set(dept[part])), len(pages)))
    return pd.DataFrame(rows, columns=columns)


def _department_spread(daily: pd.DataFrame) -> pd.DataFrame:
    """Per month, the unweighted mean and median of the departments' shares with no way
    to book (departments with a valid probe): beside the pooled national share, which
    weighs a department by its number of probes."""
    per = daily.groupby(["month", "department"])[[*VALID_COLUMNS]].sum()
    valid = per[VALID_COLUMNS].sum(axis=1)
    no_way = per[NO_WAY_COLUMNS].sum(axis=1)
    share = (no_way / valid.where(valid > 0)).dropna().rename("share").reset_index()
    spread = share.groupby("month")["share"].agg(["mean", "median"]).reset_index()
    return spread.rename(
        columns={"mean": "departments_mean_share", "median": "departments_median_share"}
    )


def unreliable_target_month(unrecognized: int, probes: int) -> bool:
    """The rule, in exact arithmetic (no float rounding at the 10 % boundary):
    unrecognized / probes > 10 %."""
    return probes > 0 and Fraction(unrecognized, probes) > UNRELIABLE_SHARE


def _unreliable_target_months(daily: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """Per group and month, its target-months (targets with a probe in the month) and how
    many of them are unreliable: the rule is applied per target and month first, then
    counted (a department whose overall share
    is low can still include one target whose pages went unrecognized)."""
    keys = list(dict.fromkeys(["target_id", *group]))  # the target level has it already
    per = daily.groupby(keys, dropna=False)[OUTCOME_COLUMNS].sum()
    probes = per.sum(axis=1)
    per["flag"] = [
        unreliable_target_month(int(u), int(p))
        for u, p in zip(per[UNRECOGNIZED], probes, strict=True)
    ]
    counted = per.groupby(group, dropna=False)["flag"].agg(["size", "sum"]).astype("int64")
    return counted.rename(
        columns={"size": "target_months", "sum": "unreliable_target_months"}
    ).reset_index()


def _longest_episodes(
    data: StatsInput, meta: pd.DataFrame, keys: list[str], groups: pd.DataFrame
) -> list[float]:
    if data.longest.empty:
        return [0.0] * len(groups)
    longest = data.longest.join(
        meta[[k for k in LEVELS["target"] if k != "target_id"]], on="target_id"
    )
    best = longest.groupby([*keys, "month"], dropna=False)["longest_days"].max()
    out = []
    for r in groups.itertuples(index=False):
        key = tuple(r) if len(r) > 1 else r[0]
        value = best.get(key, 0.0)
        out.append(round(float(value), 2) if value == value else 0.0)
    return out


def longest_episodes(engine: Engine, months: list[Span], until: datetime) -> pd.DataFrame:
    """Per target and month, the longest episode without any slot clipped to the month
    (days), computed in SQL over the `episodes` rollup."""
    columns = ["target_id", "month", "longest_days"]
    if not months:
        return pd.DataFrame(columns=columns)
    cte, params = spans_cte("m", months)
    params.append(bindparam("until", until, type_=UTCDateTime()))
    if engine.dialect.name == "sqlite":
        lo, hi = "max(e.start_at, m.s)", "min(COALESCE(e.end_at, :until), m.e)"
    else:
        lo, hi = "GREATEST(e.start_at, m.s)", "LEAST(COALESCE(e.end_at, :until), m.e)"
    sql = text(
        f"WITH {cte} SELECT e.target_id AS target_id, m.label AS month, "
        f"MAX({days_between(engine, hi, lo)}) AS longest_days FROM m JOIN episodes e "
        "ON e.start_at < m.e AND COALESCE(e.end_at, :until) > m.s "
        "GROUP BY e.target_id, m.label"
    ).bindparams(*params)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sql).mappings().all(), columns=columns)
    frame["longest_days"] = frame["longest_days"].astype("float64").clip(lower=0)
    return frame


def last_complete_month(now: datetime) -> str:
    local = paris_date(now)
    first = date(local.year, local.month, 1)
    year, month = (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
    return f"{year:04d}-{month:02d}"


@dataclass(frozen=True)
class MonthPeriod:
    """How much of a calendar month the observatory saw: a month is `running` until it
    ends (no report, no feed entry before), `partial` when observation began after its
    first day or stopped before its last (the figures then cover `days_covered` days)."""

    label: str
    days_in_month: int
    days_covered: int
    running: bool

    @property
    def partial(self) -> bool:
        return self.running or self.days_covered < self.days_in_month

    @property
    def status(self) -> str:
        if self.running:
            return "en_cours"
        return "partiel" if self.partial else "complet"


def month_periods(
    labels: list[str], first: datetime, last: datetime, now: datetime
) -> dict[str, MonthPeriod]:
    """For each month label: its days, the days between the first probe and the last one
    (Europe/Paris calendar days, both ends included) and whether it is still running at
    `now`."""
    first_day = paris_date(first)
    last_day = paris_date(min(last, now))
    current = month_of(now)
    periods = {}
    for label in labels:
        year, month = (int(x) for x in label.split("-"))
        start = date(year, month, 1)
        nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        days = (nxt - start).days
        lo, hi = max(start, first_day), min(nxt - timedelta(days=1), last_day)
        covered = max(0, (hi - lo).days + 1)
        periods[label] = MonthPeriod(label, days, covered, label >= current)
    return periods
