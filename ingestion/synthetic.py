"""Synthetic CRM exports in the canonical landing format (docs/data-model.md).

``generate()`` simulates a sales organisation over the ~24 months before ``end`` — reps in
regional teams with monthly quotas, accounts and their contacts, inbound and outbound
leads, opportunities moving through the default stages and on into after-sales, and the
activities around them — and writes what its CRM would have exported as daily batches::

    <out_dir>/<batch_id>/<entity>.csv|parquet     batch_id like 2026-11-23T0600

Every batch holds one file per entity of WRITTEN_ENTITIES: the core ones, quotas and
fx_rates. Batch 1 is a full export: every record known at its cutoff, in its state at that
cutoff. Each later batch is an incremental export taken at 06:00 UTC the next day: the
versioned entities (accounts, users, contacts, leads, opportunities) created or changed
since the previous cutoff, in their state at this cutoff; the quotas published or revised
since then; and the events (stage_changes, activities, fx_rates) that happened since then.
Like many real incremental exports, each one re-sends the last 6 hours of the previous
window, so event rows arrive twice and the loader must deduplicate them. Nothing in a
batch is dated after its cutoff, except the close_date of an open opportunity (its
expected close date) and the month of a quota planned ahead.

Stages are the canonical names of DEFAULT_STAGES, used as labels. Deals start in
prospecting or qualification, may skip a stage, fall back to a lower open stage, be lost
and (once) revived; won deals move on to onboarding (most), then follow_up (many), and
some of those to renewal about ten months after the win. About a fifth of the won deals
get no recorded activity after the win; the others a first touch within days. As in a
real CRM, the configured stage probabilities are optimistic where it matters: deals that
reach proposal or negotiation, which carry most of the weighted pipeline, win far less
often than configured, so a forecast with the configured probabilities over-predicts,
while win rates learned from recent closed deals track reality (they do not drift; see
_OPEN_TRANSITIONS).

Quotas: one per rep and month, from the first month of the history (or the rep's hire) to
the quarter planned next, sized on the rep's share of the company's won amount (see
_make_quotas); EMEA reps' quotas are in EUR, the others in USD, and fx_rates carries the
EUR → USD rates of every weekday from before the first quota to the last cutoff. Deals
are in USD. About 2% of the leads have no channel (and their opportunities no
lead_source).

Determinism: the files are a pure function of (opportunities, batches, seed, end, fmt).
The same arguments produce byte-identical files (given the same numpy and pyarrow
versions: numpy's PCG64 streams and pyarrow's writers are stable, and Parquet footers
name the pyarrow version). ``end`` defaults to today's UTC date, so pass it when you need
reproducible output. The simulated world does not depend on ``batches`` or ``fmt``; they
only decide how it is cut into files.

How the world is simulated, in brief. Every record is sampled with numpy in bulk; the only
Python loops run over simulation steps, batches and entities. Time is first simulated
as a continuous "plan time", then each timestamp is placed in its owner's regional
working hours by a monotone map (``_working_time``), so order is preserved while events
cluster in business hours (APAC reps work across 00:00–06:00 UTC, which is what puts
events into the re-exported overlap window). An opportunity's whole life is simulated,
including the part after ``end``; exports then show each record as of each cutoff.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion.errors import ConfigError
from ingestion.schema import ACTIVITY_TYPES, CHANNELS, CORE_ENTITIES, ENTITIES
from ingestion.stages import DEFAULT_STAGES

__all__ = ["WRITTEN_ENTITIES", "GenerationSummary", "batch_id_for", "generate"]

MIN_OPPORTUNITIES, MAX_OPPORTUNITIES = 100, 1_000_000
MIN_BATCHES, MAX_BATCHES = 1, 60

DAY = 86_400
HOUR = 3_600
HISTORY_DAYS = 730
EXPORT_HOUR_UTC = 6
OVERLAP_SECONDS = 6 * HOUR
_NEVER = np.iinfo(np.int64).max  # milestone that never happens (or not yet)

# ---------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------

# (name, team code, working-hours start in UTC, working-hours length, share of business).
# Windows may run past midnight UTC; that is what makes the 06:00 export cutoff fall
# inside some reps' working day.
_REGIONS = (
    ("North America", "NA", 13, 12, 0.44),
    ("EMEA", "EMEA", 7, 10, 0.30),
    ("APAC", "APAC", 23, 10, 0.16),
    ("LATAM", "LATAM", 12, 10, 0.10),
)
_REGION_START = np.array([r[2] * HOUR for r in _REGIONS], dtype=np.float64)
_REGION_SPAN = np.array([r[3] * HOUR for r in _REGIONS], dtype=np.float64)
_REGION_WEIGHT = np.array([r[4] for r in _REGIONS])

# (country, region index, share of accounts, phone country code)
_COUNTRIES = (
    ("United States", 0, 0.38, "+1"),
    ("Canada", 0, 0.06, "+1"),
    ("United Kingdom", 1, 0.09, "+44"),
    ("Germany", 1, 0.07, "+49"),
    ("France", 1, 0.05, "+33"),
    ("Netherlands", 1, 0.03, "+31"),
    ("Spain", 1, 0.02, "+34"),
    ("Sweden", 1, 0.02, "+46"),
    ("South Africa", 1, 0.01, "+27"),
    ("United Arab Emirates", 1, 0.01, "+971"),
    ("Australia", 2, 0.06, "+61"),
    ("Japan", 2, 0.04, "+81"),
    ("Singapore", 2, 0.03, "+65"),
    ("India", 2, 0.03, "+91"),
    ("Brazil", 3, 0.05, "+55"),
    ("Mexico", 3, 0.03, "+52"),
    ("Argentina", 3, 0.01, "+54"),
    ("Chile", 3, 0.01, "+56"),
)
_COUNTRY_REGION = np.array([c[1] for c in _COUNTRIES])
_COUNTRY_WEIGHT = np.array([c[2] for c in _COUNTRIES])

_INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Telecommunications",
    "Media",
    "Logistics",
    "Energy",
    "Government",
    "Professional Services",
)
_INDUSTRY_WEIGHT = np.array([18, 12, 10, 12, 9, 5, 5, 5, 7, 4, 3, 10], dtype=float)

# fmt: off
_NAME_PREFIX = (
    "North", "Blue", "Silver", "Bright", "Red", "Green", "Iron", "Clear", "Swift", "Stone",
    "Sun", "Star", "Pine", "Oak", "River", "Lake", "Summit", "Peak", "Cloud", "Nova",
    "Apex", "Vertex", "Quantum", "Atlas", "Orion", "Polar", "Cedar", "Maple", "Harbor",
    "Bay", "Crest", "Delta", "Echo", "Falcon", "Granite", "Horizon", "Indigo", "Jade",
    "Keystone", "Lumen", "Meridian", "Noble", "Open", "Prime", "Rapid", "Sage", "Terra",
    "Unity", "Vista", "West", "East", "South", "Golden", "Copper", "Cobalt", "Coral",
    "Evergreen", "First", "Global", "Hyper",
)
_NAME_CORE = (
    "wind", "field", "bridge", "point", "gate", "works", "logic", "soft", "tech", "line",
    "path", "scape", "core", "stream", "forge", "labs", "data", "net", "wave", "grid",
    "cast", "mark", "vale", "port", "ridge", "stack", "sphere", "spark", "view", "way",
    "well", "wood", "yard", "hub", "mint", "nest", "pulse", "quest", "rock", "shift",
    "sign", "star", "ware", "wise", "base", "bit", "cloud", "craft", "dyne", "flow",
)
_NAME_SUFFIX = (
    "Inc", "LLC", "Ltd", "GmbH", "SA", "BV", "AB", "Pty Ltd", "KK", "Group", "Holdings",
    "Systems", "Solutions", "Partners", "Industries", "Corp",
)

# (display name, e-mail form): a few non-ASCII names keep the UTF-8 path honest.
_FIRST_NAMES = (
    ("Anna", "anna"), ("James", "james"), ("Maria", "maria"), ("David", "david"),
    ("Sofia", "sofia"), ("Michael", "michael"), ("Emma", "emma"), ("Daniel", "daniel"),
    ("Olivia", "olivia"), ("Lucas", "lucas"), ("Mia", "mia"), ("Noah", "noah"),
    ("Chloé", "chloe"), ("José", "jose"), ("Jürgen", "juergen"), ("Zoë", "zoe"),
    ("Hiroshi", "hiroshi"), ("Yuki", "yuki"), ("Priya", "priya"), ("Arjun", "arjun"),
    ("Wei", "wei"), ("Mei", "mei"), ("Liam", "liam"), ("Ava", "ava"), ("Ethan", "ethan"),
    ("Isabella", "isabella"), ("Mateo", "mateo"), ("Camila", "camila"), ("Lars", "lars"),
    ("Ingrid", "ingrid"), ("Pierre", "pierre"), ("Camille", "camille"), ("Omar", "omar"),
    ("Fatima", "fatima"), ("Thabo", "thabo"), ("Naledi", "naledi"), ("Ben", "ben"),
    ("Sarah", "sarah"), ("Tom", "tom"), ("Laura", "laura"), ("Raj", "raj"),
    ("Aisha", "aisha"), ("Carlos", "carlos"), ("Lucía", "lucia"), ("Kenji", "kenji"),
    ("Sakura", "sakura"), ("Jack", "jack"), ("Grace", "grace"), ("Henrik", "henrik"),
    ("Elif", "elif"),
)
_LAST_NAMES = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Garcia", "garcia"), ("Müller", "mueller"),
    ("Schmidt", "schmidt"), ("Martin", "martin"), ("Bernard", "bernard"), ("Rossi", "rossi"),
    ("Tanaka", "tanaka"), ("Suzuki", "suzuki"), ("Sato", "sato"), ("Patel", "patel"),
    ("Sharma", "sharma"), ("Chen", "chen"), ("Wang", "wang"), ("Li", "li"),
    ("Kim", "kim"), ("Nguyen", "nguyen"), ("Silva", "silva"), ("Santos", "santos"),
    ("Pereira", "pereira"), ("Rodríguez", "rodriguez"), ("López", "lopez"),
    ("Hernández", "hernandez"), ("Jansen", "jansen"), ("de Vries", "devries"),
    ("Andersson", "andersson"), ("Nilsson", "nilsson"), ("Dubois", "dubois"),
    ("Moreau", "moreau"), ("Brown", "brown"), ("Taylor", "taylor"), ("Wilson", "wilson"),
    ("Evans", "evans"), ("Walker", "walker"), ("Khan", "khan"), ("Ali", "ali"),
    ("Naidoo", "naidoo"), ("Dlamini", "dlamini"), ("Cohen", "cohen"), ("Novak", "novak"),
    ("Kowalski", "kowalski"), ("Yilmaz", "yilmaz"), ("Murphy", "murphy"),
    ("Kelly", "kelly"), ("Fischer", "fischer"), ("Weber", "weber"), ("Costa", "costa"),
    ("Ito", "ito"), ("Clark", "clark"),
)

_TITLES = (
    "CEO", "CTO", "CFO", "COO", "VP Sales", "VP Marketing", "VP Engineering",
    "Head of Operations", "Head of IT", "IT Manager", "Procurement Manager",
    "Director of Engineering", "Product Manager", "Operations Manager", "Data Analyst",
    "Office Manager", "Finance Director", "Sales Operations Manager", "Software Engineer",
    "Marketing Manager",
)
# fmt: on
_TITLE_WEIGHT = np.array([2, 2, 2, 1, 3, 3, 2, 4, 4, 8, 6, 4, 7, 7, 6, 4, 3, 4, 8, 7], dtype=float)

# Lead channels as in docs/data-model.md. Converted leads lean to referral/partner, those that
# never convert to social/paid: per-channel conversion rates differ, as in real funnels.
_CHANNELS = CHANNELS
_CHANNEL_W_CONVERTED = np.array([10, 6, 12, 14, 10, 22, 14, 9, 3], dtype=float)
_CHANNEL_W_OTHER = np.array([14, 12, 18, 5, 9, 22, 12, 5, 3], dtype=float)
_OUTBOUND = _CHANNELS.index("outbound")

_LEAD_STATUSES = ("new", "working", "qualified", "converted", "disqualified")
_L_NEW, _L_WORKING, _L_QUALIFIED, _L_CONVERTED, _L_DISQUALIFIED = range(5)

_PRODUCTS = ("New Business", "Expansion", "Upsell", "Pilot", "Platform Deal", "Add-on Seats")
_PRODUCT_WEIGHT = np.array([40, 20, 15, 10, 10, 5], dtype=float)

_LOST_REASONS = (
    "price",
    "competitor",
    "no budget",
    "no decision",
    "timing",
    "product fit",
    "unresponsive",
)
_LOST_WEIGHT = np.array([22, 20, 14, 18, 10, 8, 8], dtype=float)

_ACTIVITY_TYPES = ACTIVITY_TYPES
_SUBJECTS = (
    ("Intro email", "Follow-up email", "Sent case study"),
    ("Discovery call", "Check-in call", "Pricing call"),
    ("Discovery meeting", "Stakeholder meeting", "Executive meeting"),
    ("Product demo", "Technical demo", "Custom demo"),
    ("Proposal sent", "Revised proposal", "Proposal review"),
    ("Follow-up", "Post-meeting follow-up", "Customer check-in"),
    ("Kickoff meeting", "Onboarding session", "Training session"),
    ("Note", "LinkedIn touch", "Webinar attended"),
)
_SUBJECT_VARIANTS = len(_SUBJECTS[0])

# ---------------------------------------------------------------------------------------
# Stages and the pipeline model
# ---------------------------------------------------------------------------------------

_STAGE = {s.stage: s.stage_order for s in DEFAULT_STAGES}
_N_CODES = max(_STAGE.values()) + 1
_STAGE_LABEL = [""] * _N_CODES
_STAGE_PROB = np.zeros(_N_CODES)
_IS_OPEN = np.zeros(_N_CODES, dtype=bool)
_IS_CLOSED = np.zeros(_N_CODES, dtype=bool)  # won, lost or post-sale
_IS_WON = np.zeros(_N_CODES, dtype=bool)  # won or post-sale
for _s in DEFAULT_STAGES:
    _STAGE_LABEL[_s.stage_order] = _s.stage
    _STAGE_PROB[_s.stage_order] = _s.probability
    _IS_OPEN[_s.stage_order] = _s.category == "open"
    _IS_CLOSED[_s.stage_order] = _s.category != "open"
    _IS_WON[_s.stage_order] = _s.category in ("won", "post_sale")

PROSPECTING, QUALIFICATION, MEETING, PROPOSAL, NEGOTIATION = (
    _STAGE[s] for s in ("prospecting", "qualification", "meeting", "proposal", "negotiation")
)
WON, LOST, ONBOARDING, FOLLOW_UP, RENEWAL = (
    _STAGE[s] for s in ("closed_won", "closed_lost", "onboarding", "follow_up", "renewal")
)
_POST_WIN = np.zeros(_N_CODES, dtype=bool)  # closed_won and the post-sale stages
_POST_WIN[[WON, ONBOARDING, FOLLOW_UP, RENEWAL]] = True

# Where a deal goes when it leaves an open stage, and how often. Besides the step forward:
# skipping a stage, falling back to a lower open stage, and losing the deal. Conversion
# differs per stage (prospecting, where weak prospects drop out, and the late stages lose
# the most).
#
# The numbers (with the rescues below) are chosen so that real win rates disagree with the
# configured stage probabilities the way a real CRM's defaults do: that is what a forecast
# with learned probabilities has to discover. Among closed deals, the share won of those
# that reached a stage (docs/kpis.md's empirical win probability) comes out near prospecting
# 0.14, qualification 0.17, meeting 0.22, proposal 0.30, negotiation 0.48, against the
# configured 0.05 / 0.10 / 0.20 / 0.50 / 0.80:
# - proposal and negotiation win far less often than configured: the configured numbers
#   are the reps' gut feeling, and a sent proposal or a deal in negotiation is still often
#   lost to price, a competitor or no decision (hence the large losses there). These two
#   stages hold about 80% of the configured weighted pipeline at a month end, so a forecast
#   with the configured probabilities over-predicts what the open deals bring, by some
#   30-50%;
# - the top of the funnel wins somewhat more often than its 5-10% guess (most deals are
#   created from leads that were already qualified), and meeting is about right; their
#   small weights do not offset the late stages.
# The rates hold over the whole history (no drift), so probabilities learned from the
# deals closed in the last year are those of the open deals too.
_OPEN_TRANSITIONS: dict[str, dict[str, float]] = {
    "prospecting": {"qualification": 0.52, "meeting": 0.05, "closed_lost": 0.43},
    "qualification": {"meeting": 0.68, "proposal": 0.06, "prospecting": 0.03, "closed_lost": 0.23},
    "meeting": {"proposal": 0.64, "negotiation": 0.04, "qualification": 0.05, "closed_lost": 0.27},
    "proposal": {"negotiation": 0.54, "meeting": 0.05, "qualification": 0.02, "closed_lost": 0.39},
    "negotiation": {"closed_won": 0.42, "proposal": 0.08, "closed_lost": 0.50},
}
_NEXT_UP = np.zeros(_N_CODES, dtype=np.int8)  # the plain step forward from an open stage
for _src, _dst in (
    ("prospecting", "qualification"),
    ("qualification", "meeting"),
    ("meeting", "proposal"),
    ("proposal", "negotiation"),
    ("negotiation", "closed_won"),
):
    _NEXT_UP[_STAGE[_src]] = _STAGE[_dst]


def _transition_cdf() -> np.ndarray:
    cdf = np.zeros((_N_CODES, _N_CODES))
    for src, row in _OPEN_TRANSITIONS.items():
        for dst, p in row.items():
            cdf[_STAGE[src], _STAGE[dst]] = p
    cdf = np.cumsum(cdf, axis=1)
    rows = cdf[:, -1] > 0
    cdf[rows] /= cdf[rows, -1:]
    cdf[rows, -1] = 1.0  # no float shortfall: every draw u < 1 finds a destination
    return cdf


_TRANSITION_CDF = _transition_cdf()

# Median days spent in a stage before leaving it (log-normal, sigma below): late stages
# are slower, negotiation slowest — the bottleneck the marts should find.
_STAGE_MEDIAN_DAYS = np.zeros(_N_CODES)
for _name, _days in (
    ("prospecting", 5.0),
    ("qualification", 8.0),
    ("meeting", 10.0),
    ("proposal", 13.0),
    ("negotiation", 20.0),
):
    _STAGE_MEDIAN_DAYS[_STAGE[_name]] = _days
_STAGE_SIGMA = 0.8
_LOSS_STALL = 1.3  # deals that end up lost linger longer first
_REVIVE_P, _REVIVE_MEDIAN_DAYS = 0.10, 75.0  # lost deals picked up again, once
_REVIVE_TO = np.array([PROSPECTING, QUALIFICATION, MEETING], dtype=np.int8)
_REVIVE_TO_CDF = np.cumsum([0.2, 0.6, 0.2])
_ONBOARDING_P, _ONBOARDING_MEDIAN_DAYS = 0.90, 5.0
_FOLLOW_UP_P, _FOLLOW_UP_MEDIAN_DAYS = 0.65, 40.0
# Renewal: deals that reached follow_up enter renewal about two months before their annual
# term ends (days after the win). Untended customers (below) renew less often, and with no
# recorded touch (an auto-renewal); a departed rep's customers are not renewed in this
# pipeline (they churn, or come back as new deals of the successor).
_RENEWAL_P, _RENEWAL_P_UNTENDED = 0.60, 0.35
_RENEWAL_DAYS, _RENEWAL_SD_DAYS = 300.0, 15.0
# Won deals handed over without any recorded post-sale activity (the customer is left to
# itself, or served outside the CRM), more often the small ones: about a fifth of the wins.
# The others get a first touch soon after the win (kpi_post_sale's followed_up_share is
# about 0.8). Which wins go untended is a systematic sample over the wins in time order,
# so the share holds month by month instead of scattering binomially around it (at 5,000
# opportunities a month has only 20-40 wins).
_UNTENDED_P_SMALL, _UNTENDED_P_LARGE, _UNTENDED_SMALL_AMOUNT = 0.30, 0.15, 10_000.0
_MIN_WAIT_DAYS = 2 / 24  # keeps consecutive changes of one deal at distinct seconds
_MAX_STEPS = 80  # far above any simulated path; a safety net, not a model parameter

# Expected close date while open: stage entry + this many days × the rep's optimism.
_DAYS_TO_CLOSE = np.zeros(_N_CODES)
for _name, _days in (
    ("prospecting", 70.0),
    ("qualification", 60.0),
    ("meeting", 45.0),
    ("proposal", 30.0),
    ("negotiation", 14.0),
):
    _DAYS_TO_CLOSE[_STAGE[_name]] = _days

# Activities: expected count per stage interval (open stages are the touchpoints) and the
# activity-type mix per context. Contexts are stage codes plus one for lead activities.
_CTX_LEAD = _N_CODES
_ACTIVITY_RATE = np.zeros(_N_CODES)
for _name, _rate in (
    ("prospecting", 1.3),
    ("qualification", 1.6),
    ("meeting", 2.1),
    ("proposal", 1.9),
    ("negotiation", 2.0),
    ("closed_won", 0.8),
    ("closed_lost", 0.2),
    ("onboarding", 2.5),
    ("follow_up", 1.5),
    ("renewal", 2.2),
):
    _ACTIVITY_RATE[_STAGE[_name]] = _rate
# Terminal stages have no next change; activities spread over this many days after entry.
_TERMINAL_WINDOW_DAYS = np.zeros(_N_CODES)
for _name, _days in (
    ("closed_won", 30.0),
    ("closed_lost", 60.0),
    ("onboarding", 45.0),
    ("follow_up", 60.0),
    ("renewal", 60.0),
):
    _TERMINAL_WINDOW_DAYS[_STAGE[_name]] = _days


def _type_mix() -> np.ndarray:
    mixes = {  # email, call, meeting, demo, proposal, follow_up, onboarding, other
        "prospecting": (50, 35, 0, 0, 0, 5, 0, 10),
        "qualification": (35, 40, 15, 0, 0, 5, 0, 5),
        "meeting": (10, 10, 45, 30, 0, 5, 0, 0),
        "proposal": (25, 20, 10, 5, 30, 10, 0, 0),
        "negotiation": (30, 35, 20, 0, 10, 5, 0, 0),
        "closed_won": (20, 10, 0, 0, 0, 60, 10, 0),
        "closed_lost": (70, 10, 0, 0, 0, 10, 0, 10),
        "onboarding": (5, 5, 10, 0, 0, 0, 80, 0),
        "follow_up": (10, 10, 0, 0, 0, 80, 0, 0),
        "renewal": (25, 30, 20, 0, 20, 5, 0, 0),
    }
    cdf = np.zeros((_N_CODES + 1, len(_ACTIVITY_TYPES)))
    for name, mix in mixes.items():
        cdf[_STAGE[name]] = mix
    cdf[_CTX_LEAD] = (50, 30, 10, 0, 0, 0, 0, 10)
    rows = cdf.sum(axis=1) > 0
    cdf = np.cumsum(cdf, axis=1)
    cdf[rows] /= cdf[rows, -1:]
    cdf[rows, -1] = 1.0
    return cdf


_TYPE_CDF = _type_mix()
_ACT_MEETING_LIKE = np.isin(np.arange(len(_ACTIVITY_TYPES)), [1, 2, 3])  # call, meeting, demo

# Leads whose source was never recorded (an import, a form without the field): their
# channel is empty, and so is the lead_source of the opportunity they become.
_NO_CHANNEL_P = 0.02

# ---------------------------------------------------------------------------------------
# Quotas and exchange rates
# ---------------------------------------------------------------------------------------

# Each quarter's monthly quotas are published 75 days before the quarter starts, in the
# middle of the quarter before (so reps know their next two to five months), and a fifth
# of the reps' quotas are revised two weeks later, when the plan is final. A new hire gets
# quotas from the month of hire, ramping up over the first three months; when a rep
# leaves, the quotas already published for the months after the leaving month are revised
# to 0.
_QUOTA_PUBLISH_DAYS = 75
_QUOTA_PUBLISH_HOUR = 14
_QUOTA_FINALIZE_DAYS = 14
_QUOTA_REVISED_P, _QUOTA_REVISION_SIGMA = 0.20, 0.10
_QUOTA_NOISE_SIGMA = 0.08
_QUOTA_RAMP_MONTHS = 3
_QUOTA_ROUND = 500.0
# Quotas are what the rep is expected to win (see _make_quotas), so over the settled
# months all reps together win about the sum of their quotas. A rep's month is lumpy,
# though: at 5,000 opportunities a rep wins about 1.3 deals a month, so about a third of
# the rep-months win nothing and the median attainment is ~0.4-0.5; at 40,000 (4 deals a
# month) ~0.7, at 1,000,000 ~0.9 with two thirds of the rep-months within 50-130%. The
# history's first months (an empty pipeline) and new hires' first months fall far below.
_QUOTA_STRETCH = 1.0
_QUOTA_MONTHS_AHEAD = 6  # months after the last cutoff's month that quotas are planned for
# The trend and the reps' shares are fitted on the months where the pipeline has filled to
# at least this share; the first month's quota is at least this share of a full one.
_QUOTA_FIT_FILL, _QUOTA_MIN_FILL = 0.3, 0.1

# Reps of these regions carry quotas in EUR, the others in the reporting currency. Deals
# stay in USD. EUR → USD reference rates are published on weekdays (like the ECB's, at
# 15:00 UTC); the log rate is a random walk around 1.10, scaled into about 1.055-1.15.
_CURRENCIES = ("USD", "EUR")
_EUR_REGIONS = (1,)  # EMEA
_FX_CENTRE, _FX_DAILY_SIGMA, _FX_LOG_RANGE = 1.10, 0.004, 0.085
_FX_PUBLISH_HOUR = 15

# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate`` wrote. ``rows`` counts rows per entity over all batches."""

    out_dir: Path
    batch_ids: tuple[str, ...]
    rows: dict[str, int]
    end: dt.date

    def __str__(self) -> str:
        counts = ", ".join(f"{n:,} {entity}" for entity, n in self.rows.items())
        first, last = self.batch_ids[0], self.batch_ids[-1]
        span = first if first == last else f"{first}..{last}"
        return f"{len(self.batch_ids)} batch(es) {span} in {self.out_dir}: {counts}"


def batch_id_for(cutoff: dt.datetime) -> str:
    """The landing folder name of the export taken at ``cutoff`` (UTC), e.g. 2026-11-23T0600."""
    return cutoff.strftime("%Y-%m-%dT%H%M")


def generate(
    out_dir: Path,
    *,
    opportunities: int = 5000,
    batches: int = 4,
    seed: int = 42,
    end: dt.date | None = None,
    fmt: Literal["csv", "parquet"] = "csv",
) -> GenerationSummary:
    """Write ``batches`` synthetic CRM exports into ``out_dir`` (which must be empty).

    ``opportunities`` is the number of opportunities created over the ~24 months before
    the last export, which is taken at 06:00 UTC on ``end`` (default: today, UTC); the
    others are taken at 06:00 UTC on the days before. The output is byte-identical for
    the same (opportunities, batches, seed, end, fmt).
    """
    out_dir = Path(out_dir)
    end = _check_args(out_dir, opportunities, batches, seed, end, fmt)
    last_cutoff = dt.datetime.combine(end, dt.time(EXPORT_HOUR_UTC), tzinfo=dt.UTC)
    cutoff_times = [last_cutoff - dt.timedelta(days=batches - 1 - k) for k in range(batches)]
    cutoffs = np.array([int(c.timestamp()) for c in cutoff_times], dtype=np.int64)
    batch_ids = tuple(batch_id_for(c) for c in cutoff_times)

    world = _World.simulate(opportunities, seed, int(cutoffs[-1]))
    rows = {entity: 0 for entity in WRITTEN_ENTITIES}
    out_dir.mkdir(parents=True, exist_ok=True)
    # Arrow writes without holding the GIL, so one writer thread overlaps writing a file
    # with building the next table. Each file still comes from one sequential write.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future[None] | None = None
        for k, (batch_id, cutoff) in enumerate(zip(batch_ids, cutoffs, strict=True)):
            previous = int(cutoffs[k - 1]) if k else None
            # A batch appears under its final name only when complete, so a loader or
            # sensor watching the landing directory never sees half a batch.
            partial = out_dir / f".{batch_id}.partial"
            partial.mkdir()
            try:
                for entity in _WRITE_ORDER:
                    table = world.export(entity, int(cutoff), previous, fmt)
                    rows[entity] += table.num_rows
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(_write, table, partial / f"{entity}.{fmt}", fmt)
                if pending is not None:
                    pending.result()
                    pending = None
            except BaseException:
                if pending is not None:
                    pending.cancel()
                    wait([pending])
                shutil.rmtree(partial, ignore_errors=True)
                raise
            os.rename(partial, out_dir / batch_id)
    return GenerationSummary(out_dir=out_dir, batch_ids=batch_ids, rows=rows, end=end)


# Largest files first, so writing them overlaps building the rest of the batch.
_WRITE_ORDER = (
    "activities",
    "stage_changes",
    "leads",
    "opportunities",
    "contacts",
    "accounts",
    "users",
    "quotas",
    "fx_rates",
)
# The entities written, in the contract's order: the core ones and the optional quotas
# and fx_rates.
WRITTEN_ENTITIES: tuple[str, ...] = (*CORE_ENTITIES, "quotas", "fx_rates")


def _check_args(
    out_dir: Path, opportunities: int, batches: int, seed: int, end: dt.date | None, fmt: str
) -> dt.date:
    def is_int(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if not is_int(opportunities) or not MIN_OPPORTUNITIES <= opportunities <= MAX_OPPORTUNITIES:
        raise ConfigError(
            f"synthetic generator: opportunities={opportunities!r} is out of range; "
            f"use a whole number from {MIN_OPPORTUNITIES:,} to {MAX_OPPORTUNITIES:,}."
        )
    if not is_int(batches) or not MIN_BATCHES <= batches <= MAX_BATCHES:
        raise ConfigError(
            f"synthetic generator: batches={batches!r} is out of range; use a whole number "
            f"from {MIN_BATCHES} to {MAX_BATCHES} (one export per day, the last on `end`)."
        )
    if not is_int(seed) or seed < 0:
        raise ConfigError(
            f"synthetic generator: seed={seed!r} must be a non-negative whole number."
        )
    if fmt not in ("csv", "parquet"):
        raise ConfigError(
            f"synthetic generator: fmt={fmt!r} is not supported; use 'csv' or 'parquet'."
        )
    if end is None:
        end = dt.datetime.now(dt.UTC).date()
    elif isinstance(end, dt.datetime):
        end = end.date()
    elif not isinstance(end, dt.date):
        raise ConfigError(f"synthetic generator: end={end!r} must be a date (YYYY-MM-DD).")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(
                f"synthetic generator: {out_dir} exists and is not a directory; "
                f"choose an empty or new directory for the generated batches."
            )
        if any(out_dir.iterdir()):
            raise ConfigError(
                f"synthetic generator: {out_dir} is not empty. It refuses to mix new "
                f"batches with existing files; choose an empty or new directory, or "
                f"delete the old batches first."
            )
    return end


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
        return
    with open(path, "wb") as f:
        # Arrow quotes header names; a plain header reads better and is what CRMs emit.
        f.write((",".join(table.column_names) + "\n").encode())
        # quoting "none" makes Arrow fail on a comma, quote or newline in a value instead of
        # quoting it: generated values never contain them, so a failure is a bug here.
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))


# ---------------------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------------------


def _rep_count(n_opps: int) -> int:
    """Sales headcount grows sub-linearly with volume: ~20 reps at 5k opportunities, a few
    hundred at 1M (before rounding per region)."""
    return max(8, round(20 * (n_opps / 5000) ** 0.5))


def _lognormal_days(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, size: int
) -> np.ndarray:
    return np.asarray(median) * rng.lognormal(0.0, sigma, size)


def _choice(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int32)


def _choice_rows(rng: np.random.Generator, cdf_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per element from the categorical distribution in ``cdf_rows[rows]``.

    Loops over the (few) distributions rather than materialising an n × k matrix, which
    at millions of rows would cost gigabytes.
    """
    u = rng.random(len(rows))
    out = np.zeros(len(rows), dtype=np.int8)
    for k in np.unique(rows):
        at = rows == k
        out[at] = np.searchsorted(cdf_rows[k], u[at], side="right")
    return out


def _grown_times(
    rng: np.random.Generator, size: int, start: float, stop: float, growth: float = 0.6
) -> np.ndarray:
    """Times in [start, stop) with a density rising linearly by ``growth`` — a growing
    business creates more pipeline each month."""
    u = rng.random(size)
    x = (np.sqrt(1.0 + growth * (2.0 + growth) * u) - 1.0) / growth
    return start + x * (stop - start)


def _working_time(t: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Plan time → a timestamp (int seconds) inside the plan day's working window of the
    region (which may run past midnight UTC): the day is squeezed into the window.

    Monotone non-decreasing within a region, so the order of one owner's events is kept.
    """
    day = np.floor(t / DAY)
    frac = t / DAY - day
    return (day * DAY + _REGION_START[region] + frac * _REGION_SPAN[region]).astype(np.int64)


def _segment_starts(sorted_keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def _rank(times: np.ndarray) -> np.ndarray:
    """1-based id numbers in time order (ties by position), like a CRM's sequence."""
    order = np.argsort(times, kind="stable")
    number = np.empty(len(times), dtype=np.int64)
    number[order] = np.arange(1, len(times) + 1)
    return number


def _pick_in_groups(
    rng: np.random.Generator,
    group: np.ndarray,
    members: np.ndarray,
    member_group: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """For each element, a member of its group, drawn with probability ∝ ``weight``.

    Members of weight 0 are never drawn; every group asked for needs a positive weight.
    """
    order = np.lexsort((members, member_group))
    m, g, w = members[order], member_group[order], weight[order].astype(np.float64)
    cum = np.cumsum(w)
    n_groups = int(max(g.max(), group.max())) + 1
    hi = np.zeros(n_groups)
    np.maximum.at(hi, g, cum)
    before = cum - w
    lo = np.full(n_groups, np.inf)
    np.minimum.at(lo, g, before)
    target = lo[group] + rng.random(len(group)) * (hi[group] - lo[group])
    idx = np.searchsorted(cum, target, side="right")
    return m[np.minimum(idx, len(m) - 1)]


# ---------------------------------------------------------------------------------------
# String columns, built in bulk
# ---------------------------------------------------------------------------------------

_QUADS = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), dtype="<u4")


def _validity(valid: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    if valid is None or valid.all():
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), int((~valid).sum())


def _fixed_strings(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Rows of an (n, width) uint8 matrix as a string array, without per-row Python."""
    n, width = matrix.shape
    data = np.ascontiguousarray(matrix)
    large = n * width >= 2**31 - 1
    offsets = np.arange(0, n * width + 1, width, dtype=np.int64 if large else np.int32)
    bitmap, nulls = _validity(valid)
    cls = pa.LargeStringArray if large else pa.StringArray
    return cls.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of ints in [0, 10**width) as an (n, width) uint8 matrix.

    Four digits per table look-up, and one 64-bit division: 64-bit integer division is
    the slow part, and ids number in the tens of millions at full size.
    """
    if not 1 <= width <= 12:
        raise ValueError(f"width {width} not in 1..12")
    quads = np.empty((len(values), 3), dtype="<u4")
    low = (values % 100_000_000).astype(np.uint32)
    quads[:, 0] = _QUADS[(values // 100_000_000).astype(np.uint32) % 10_000]
    quads[:, 1] = _QUADS[low // 10_000]
    quads[:, 2] = _QUADS[low % 10_000]
    return quads.view(np.uint8)[:, 12 - width :]


def _ids(prefix: str, numbers: np.ndarray, width: int = 8) -> pa.Array:
    """IDs like OPP-00001234; ``numbers`` < 0 become nulls."""
    valid = numbers >= 0
    if len(numbers) and numbers.max() >= 10**width:
        raise ValueError(f"{prefix} ids need more than {width} digits")
    p = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty((len(numbers), len(p) + width), dtype=np.uint8)
    out[:, : len(p)] = p
    out[:, len(p) :] = _digits(np.where(valid, numbers, 0), width)
    return _fixed_strings(out, None if valid.all() else valid)


def _timestamp_text(ts: np.ndarray) -> pa.Array:
    """int seconds → '2026-03-01T14:05:09Z' strings; _NEVER → null.

    Arrow's own timestamp formatting runs at ~1 µs a value; three table look-ups
    ("YYYY-MM-" by day, "DDTHH:MM" by day-of-month and minute, ":SSZ" by second) build
    the same text an order of magnitude faster.
    """
    if len(ts) == 0:
        return pa.array([], type=pa.string())
    valid = ts != _NEVER
    # Nulls borrow a real time, so the table of dates spans only the data.
    t = np.where(valid, ts, ts[valid].min() if valid.any() else 0)
    day, sec = np.divmod(t, DAY)
    d0, d1 = int(day.min()), int(day.max())
    dates = np.arange(d0, d1 + 1).astype("datetime64[D]").astype("U10").astype("S10")
    month_part = np.frombuffer(b"".join(d[:8] for d in dates), dtype="<u8")
    dom = np.array([int(d[8:10]) for d in dates], dtype=np.int64)
    minute, second = np.divmod(sec, 60)
    out = np.empty(len(t), dtype=np.dtype([("a", "<u8"), ("b", "<u8"), ("c", "<u4")]))
    out["a"] = month_part[day - d0]
    out["b"] = _DAY_MINUTE[dom[day - d0] * 1440 + minute]
    out["c"] = _SECOND_Z[second]
    return _fixed_strings(out.view(np.uint8).reshape(len(t), 20), valid)


_DAY_MINUTE = np.frombuffer(
    "".join(f"{d:02d}T{m // 60:02d}:{m % 60:02d}" for d in range(32) for m in range(1440)).encode(),
    dtype="<u8",
)
_SECOND_Z = np.frombuffer("".join(f":{s:02d}Z" for s in range(60)).encode(), dtype="<u4")


def _take(choices: Sequence[str], idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(list(choices), type=pa.string()).take(pa.array(idx, type=pa.int32()))
    if valid is not None and not valid.all():
        arr = pc.if_else(pa.array(valid), arr, pa.scalar(None, pa.string()))
    return arr


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _null_where(arr: pa.Array, valid: np.ndarray) -> pa.Array:
    if valid.all():
        return arr
    return pc.if_else(pa.array(valid), arr, pa.scalar(None, arr.type))


# ---------------------------------------------------------------------------------------
# Typed columns (CSV text or Parquet types)
# ---------------------------------------------------------------------------------------


def _ts_col(ts: np.ndarray, fmt: str) -> pa.Array:
    if fmt == "csv":
        return _timestamp_text(ts)
    valid = ts != _NEVER
    micros = np.where(valid, ts, 0) * 1_000_000
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=~valid)


def _date_col(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=mask)


def _double_col(x: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(x, type=pa.float64(), mask=None if valid is None else ~valid)
    if fmt == "csv" and arr.null_count < len(arr):
        # Arrow writes large doubles as 1e+10; when every value is whole, integer text
        # reads back as the same double and looks like money.
        whole = pc.equal(arr, pc.floor(arr))
        if pc.all(pc.or_kleene(whole, pc.is_null(arr))).as_py():
            return arr.cast(pa.int64())
    return arr


def _int_col(x: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(x.astype(np.int64), type=pa.int64(), mask=None if valid is None else ~valid)


def _bool_col(x: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(x, dtype=bool), type=pa.bool_())


def _table(entity: str, columns: dict[str, pa.Array]) -> pa.Table:
    expected = ENTITIES[entity].column_names
    if list(columns) != expected:  # a programming error, not a user error
        raise AssertionError(f"{entity}: built {list(columns)}, contract says {expected}")
    return pa.table(columns)


def _last_at_or_before(cutoff: int, *milestones: np.ndarray) -> np.ndarray:
    """Latest of the milestone times that are ≤ cutoff (−1 if none)."""
    out = np.full(len(milestones[0]), -1, dtype=np.int64)
    for m in milestones:
        np.maximum(out, np.where(m <= cutoff, m, -1), out=out)
    return out


# ---------------------------------------------------------------------------------------
# The simulated world
# ---------------------------------------------------------------------------------------


class _World:
    """Every record of the simulated CRM with its full history, as numpy arrays.

    Entities are index-addressed internally (foreign keys are array positions); public
    ids are minted at export time from a per-entity number ranked by creation time.
    Timestamps are int seconds since the Unix epoch (UTC); ``_NEVER`` marks a milestone
    that does not happen.
    """

    # Public id = prefix + zero-padded number, per entity (the attribute ``<kind>_number``).
    _ID_FORMAT: ClassVar[dict[str, tuple[str, int]]] = {
        "user": ("USR-", 5),
        "acc": ("ACC-", 8),
        "con": ("CON-", 8),
        "lead": ("LEAD-", 8),
        "opp": ("OPP-", 8),
    }

    def __init__(self) -> None:
        self._id_strings: dict[str, pa.Array] = {}

    def _ref(self, kind: str, idx: np.ndarray) -> pa.Array:
        """Public ids of the ``kind`` records at positions ``idx`` (−1 → null).

        Each entity's ids are formatted once; a reference is then an Arrow take, which
        matters for activities, whose five id columns run to tens of millions of values.
        """
        strings = self._id_strings.get(kind)
        if strings is None:
            prefix, width = self._ID_FORMAT[kind]
            strings = _ids(prefix, getattr(self, f"{kind}_number"), width)
            self._id_strings[kind] = strings
        valid = idx >= 0
        return strings.take(pa.array(idx, type=pa.int32(), mask=None if valid.all() else ~valid))

    @classmethod
    def simulate(cls, n_opps: int, seed: int, last_cutoff: int) -> _World:
        w = cls()
        # Children of one SeedSequence are keyed by their index, so streams added at the end
        # leave the earlier ones (and what they simulate) unchanged.
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(11)]
        w.last_cutoff = last_cutoff
        # Creation stops at the start of the last export day; see _make_opportunities.
        w.plan_end = float(last_cutoff - last_cutoff % DAY)
        w.plan_start = w.plan_end - HISTORY_DAYS * DAY
        w._make_users(streams[0], n_opps)
        w._make_accounts(streams[1], n_opps)
        w._make_opportunities(streams[2], n_opps, streams[8])
        w._make_leads(streams[3])
        w._finish_accounts(streams[4])
        w._make_contacts(streams[5])
        w._make_activities(streams[6])
        w._finish_users(streams[7])
        w._make_fx_rates(streams[9])
        w._make_quotas(streams[10])
        return w

    # -- users -----------------------------------------------------------------------

    def _make_users(self, rng: np.random.Generator, n_opps: int) -> None:
        n_reps = _rep_count(n_opps)
        per_region = np.maximum(2, np.round(_REGION_WEIGHT * n_reps)).astype(int)
        rep_region = np.repeat(np.arange(len(_REGIONS)), per_region)
        n_reps = len(rep_region)
        teams_per_region = np.ceil(per_region / 7).astype(int)
        team_region = np.repeat(np.arange(len(_REGIONS)), teams_per_region)
        team_first = np.r_[0, np.cumsum(teams_per_region)[:-1]]
        # Reps are dealt round-robin to the teams of their region.
        rank_in_region = np.arange(n_reps) - np.r_[0, np.cumsum(per_region)[:-1]][rep_region]
        rep_team = team_first[rep_region] + rank_in_region % teams_per_region[rep_region]
        n_teams = len(team_region)
        n_dirs = len(_REGIONS)

        # Users: one director per region, one manager per team, then the reps.
        n = n_dirs + n_teams + n_reps
        self.n_users = n
        role = np.repeat(np.array([0, 1, 2], dtype=np.int8), [n_dirs, n_teams, n_reps])
        self.user_role = role
        region = np.r_[np.arange(n_dirs), team_region, rep_region]
        self.user_region = region
        team = np.r_[np.full(n_dirs, -1), np.arange(n_teams), rep_team]
        self.user_team = team
        self.team_code = np.array([_REGIONS[r][1] for r in team_region])
        self.team_number = np.arange(n_teams) - team_first[team_region] + 1
        manager = np.r_[np.full(n_dirs, -1), team_region, n_dirs + rep_team]
        self.user_manager = manager

        start = self.plan_start
        hired = np.empty(n)
        # Leadership first: directors, then managers, then their teams.
        hired[:n_dirs] = start - rng.uniform(1200, 1600, n_dirs) * DAY
        hired[n_dirs : n_dirs + n_teams] = start - rng.uniform(800, 1150, n_teams) * DAY
        reps = np.arange(n_dirs + n_teams, n)
        # The first rep of each team is a veteran who stays; of the others ~20% are hired
        # during the history and ~8% leave (when is decided by their last deal).
        core = np.zeros(n, dtype=bool)
        core[n_dirs + n_teams + np.unique(rep_team, return_index=True)[1]] = True
        u = rng.random(n)
        new_hire = (role == 2) & ~core & (u < 0.20)
        leaver = (role == 2) & ~core & (u >= 0.20) & (u < 0.28)
        if leaver.sum() == 0 and ((role == 2) & ~core & ~new_hire).any():
            leaver[np.flatnonzero((role == 2) & ~core & ~new_hire)[0]] = True
        hired[reps] = start - rng.uniform(60, 750, n_reps) * DAY
        hired[new_hire] = start + rng.uniform(0.1, 0.8, new_hire.sum()) * HISTORY_DAYS * DAY
        self.user_hired_plan = hired
        self.user_created = np.floor(hired).astype(np.int64)
        self.user_number = _rank(self.user_created)
        active_until = np.full(n, np.inf)
        active_until[leaver] = start + rng.uniform(0.05, 0.35, leaver.sum()) * HISTORY_DAYS * DAY
        self.user_active_until = active_until
        self.user_core = core
        self.user_leaver = leaver
        # Some reps sell more; some win more (their share of rescued would-be losses).
        self.rep_capacity = np.where(role == 2, rng.lognormal(0.0, 0.35, n), 0.0)
        self.rep_skill = np.where(role == 2, rng.normal(0.0, 1.0, n), 0.0)
        self.user_first = _choice(rng, np.ones(len(_FIRST_NAMES)), n)
        self.user_last = _choice(rng, np.ones(len(_LAST_NAMES)), n)

    def _assign_owners(
        self, rng: np.random.Generator, region: np.ndarray, when: np.ndarray
    ) -> np.ndarray:
        """A rep of the region for work starting at plan time ``when``: someone already
        hired and not yet gone, busier reps more often."""
        reps = np.flatnonzero(self.user_role == 2)
        owner = _pick_in_groups(rng, region, reps, self.user_region[reps], self.rep_capacity[reps])
        # A day of slack: working-hours placement can move a timestamp up to a day earlier.
        bad = (when - DAY < self.user_hired_plan[owner]) | (when > self.user_active_until[owner])
        if bad.any():
            core = reps[self.user_core[reps]]
            owner[bad] = _pick_in_groups(
                rng, region[bad], core, self.user_region[core], self.rep_capacity[core]
            )
        return owner.astype(np.int32)

    def _finish_users(self, rng: np.random.Generator) -> None:
        # A leaver goes a little after their last recorded piece of work; if that is after
        # the last export they are still active in every batch.
        last = np.full(self.n_users, -1, dtype=np.int64)
        np.maximum.at(last, self.opp_owner[self.sc_opp], self.sc_time)
        np.maximum.at(last, self.act_owner, self.act_time)
        lead_last = _last_at_or_before(
            _NEVER - 1,
            self.lead_created,
            self.lead_working,
            self.lead_qualified,
            self.lead_final,
            self.lead_deleted,
        )
        np.maximum.at(last, self.lead_owner, lead_last)
        left = last + (_lognormal_days(rng, 14.0, 0.5, self.n_users) * DAY).astype(np.int64)
        left = np.where(self.user_leaver & (last >= 0), left, _NEVER)
        self.user_left = np.where(left > self.last_cutoff, _NEVER, left)

    # -- exchange rates and quotas ----------------------------------------------------

    def _make_fx_rates(self, rng: np.random.Generator) -> None:
        """EUR → USD reference rates on weekdays, from before the first quota is published
        (at most two months and _QUOTA_PUBLISH_DAYS before the history's first month) to
        the last cutoff's day."""
        first_month = np.datetime64(int(self.plan_start), "s").astype("datetime64[M]")
        first_day = int(first_month.astype("datetime64[D]").astype(np.int64))
        lead_days = 62 + _QUOTA_PUBLISH_DAYS + 30
        days = np.arange(first_day - lead_days, self.last_cutoff // DAY + 1, dtype=np.int64)
        days = days[(days + 3) % 7 < 5]  # 1970-01-01 was a Thursday; keep Monday-Friday
        walk = np.cumsum(rng.normal(0.0, _FX_DAILY_SIGMA, days.size))
        lo, hi = walk.min(), walk.max()
        walk = (walk - (lo + hi) / 2) * min(1.0, _FX_LOG_RANGE / max(hi - lo, 1e-12))
        self.fx_day = days
        self.fx_time = days * DAY + _FX_PUBLISH_HOUR * HOUR
        self.fx_rate = np.round(_FX_CENTRE * np.exp(walk), 4)

    def _make_quotas(self, rng: np.random.Generator) -> None:
        """A monthly quota per rep and month, from the first month of the history (or the
        month of hire) to the months planned ahead of the last cutoff.

        A rep's quota is the company's expected won amount for the quarter times the rep's
        share of it (what the rep won in settled months against that expectation, a
        stand-in for the territory's potential), with some noise per quarter and a ramp for
        new hires. The company's expectation is a linear trend fitted to the simulated wins
        per month, times the pipeline's fill: the history starts with an empty pipeline
        (a new sales organisation, or a new CRM), so a month's wins can only come from
        deals created since, and the plan expects the share of the sales cycle (creation
        to win, as the wins show it) that fits between the start and the month.
        """
        first = np.datetime64(int(self.plan_start), "s").astype("datetime64[M]")
        cut = np.datetime64(int(self.last_cutoff), "s").astype("datetime64[M]")
        months = np.arange(first, cut + _QUOTA_MONTHS_AHEAD + 1)
        n_m = months.size
        k_cut = int(cut - first)  # the month of the last cutoff; the ones before are whole
        m0 = int(first.astype(np.int64))  # months since 1970-01

        def month_index(t: np.ndarray) -> np.ndarray:
            return t.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) - m0

        # The pipeline's fill per month: the sales cycle's distribution function at the
        # time since the start, averaged over the days of the month.
        k = np.arange(n_m)
        cycle = np.sort(self.win_time - self.opp_created[self.win_opp])
        month_start = months.astype("datetime64[s]").astype(np.int64)
        day = np.arange(month_start[0], month_start[-1] + 31 * DAY, DAY) + DAY // 2
        day_k = np.minimum(month_index(day), n_m - 1)
        since = day - int(self.plan_start)
        reached = np.searchsorted(cycle, since, side="right") / max(cycle.size, 1)
        reached = np.where(since < 0, 0.0, reached if cycle.size else 1.0)
        fill = np.bincount(day_k, weights=reached, minlength=n_m) / np.bincount(
            day_k, minlength=n_m
        )

        # The company's won amount per month, and its trend over the months the pipeline
        # has filled enough to tell (won ≈ fill × (icpt + slope × k)).
        wk = month_index(self.win_time)
        ok = (wk >= 0) & (wk < n_m)
        won = np.bincount(wk[ok], weights=self.win_amount[ok], minlength=n_m)
        fit = k[(k < k_cut) & (fill >= _QUOTA_FIT_FILL)]
        if fit.size >= 2:
            design = np.column_stack([fill[fit], fill[fit] * fit])
            (icpt, slope), *_ = np.linalg.lstsq(design, won[fit], rcond=None)
        else:
            icpt, slope = won.sum() / max(fill[:k_cut].sum(), 1.0), 0.0
        floor = max(0.25 * won[fit].mean() if fit.size else 0.0, 1.0)

        def trend(k: np.ndarray) -> np.ndarray:
            return np.maximum(icpt + slope * k, floor)

        # Reps and their tenure in months of the grid.
        reps = np.flatnonzero(self.user_role == 2)
        n_r = reps.size
        pos = np.full(self.n_users, -1, dtype=np.int64)
        pos[reps] = np.arange(n_r)
        hire_k = month_index(self.user_created[reps])
        left = self.user_left[reps]
        gone = left != _NEVER
        leave_k = np.where(gone, month_index(np.where(gone, left, 0)), n_m)

        # Each rep's share of the trend, from settled months after the ramp.
        owner = pos[self.opp_owner[self.win_opp]]
        rep_won = np.bincount(
            owner[ok] * n_m + wk[ok], weights=self.win_amount[ok], minlength=n_r * n_m
        ).reshape(n_r, n_m)
        settled = (
            (k < k_cut)
            & (fill >= _QUOTA_FIT_FILL)
            & (k >= hire_k[:, None] + _QUOTA_RAMP_MONTHS)
            & (k < leave_k[:, None])
        )
        expected = (trend(k) * fill * settled).sum(axis=1)
        share = np.divide(
            (rep_won * settled).sum(axis=1), expected, out=np.zeros(n_r), where=expected > 0
        )
        known = settled.sum(axis=1) >= 3
        typical = np.median(share[known]) if known.any() else 1.0 / n_r
        share = np.where(known, np.maximum(share, 0.3 * typical), typical)

        # The grid of rep × month, then the rows that exist.
        rk = np.broadcast_to(k, (n_r, n_m)).ravel()
        rr = np.repeat(np.arange(n_r), n_m)
        month_int = m0 + rk
        quarter_int = month_int // 3
        quarter_start = (
            (quarter_int * 3).astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
        )
        publish = quarter_start - _QUOTA_PUBLISH_DAYS * DAY + _QUOTA_PUBLISH_HOUR * HOUR
        user = reps[rr]
        created = np.maximum(publish, self.user_created[user])
        after_leaving = rk > leave_k[rr]
        exists = (rk >= hire_k[rr]) & ~(after_leaving & (created > left[rr]))
        rk, rr, user = rk[exists], rr[exists], user[exists]
        quarter_int, publish, created = quarter_int[exists], publish[exists], created[exists]

        quarter_mid = quarter_int * 3 + 1 - m0
        ramp = np.clip((rk - hire_k[rr] + 1) / (_QUOTA_RAMP_MONTHS + 1), 0.0, 1.0)
        q0 = int(quarter_int.min()) if quarter_int.size else 0
        n_q = int(quarter_int.max()) - q0 + 1 if quarter_int.size else 1
        noise = rng.lognormal(0.0, _QUOTA_NOISE_SIGMA, (n_r, n_q))
        revise = rng.random((n_r, n_q)) < _QUOTA_REVISED_P
        factor = rng.lognormal(0.0, _QUOTA_REVISION_SIGMA, (n_r, n_q))
        qi = quarter_int - q0
        start = np.maximum(fill[rk], _QUOTA_MIN_FILL)
        usd = _QUOTA_STRETCH * share[rr] * trend(quarter_mid) * start * ramp * noise[rr, qi]

        # In EUR for the reps of the EUR regions, at the rate known when the row is made.
        eur = np.isin(self.user_region[user], _EUR_REGIONS)
        at = np.maximum(np.searchsorted(self.fx_time, created, side="right") - 1, 0)
        local = np.where(eur, usd / self.fx_rate[at], usd)

        def rounded(x: np.ndarray) -> np.ndarray:
            return np.maximum(_QUOTA_ROUND, np.round(x / _QUOTA_ROUND) * _QUOTA_ROUND)

        draft = rounded(local)
        final = rounded(local * factor[rr, qi])
        finalized = publish + _QUOTA_FINALIZE_DAYS * DAY
        leaving = after_leaving[exists]
        revised = revise[rr, qi] & (final != draft) & (finalized > created)
        revised &= ~(leaving & (finalized >= left[rr]))  # no plan for who has gone
        self.q_owner = user.astype(np.int32)
        self.q_month = months[rk].astype("datetime64[D]").astype(np.int64)
        self.q_currency = eur.astype(np.int32)
        self.q_created = created
        self.q_revised = np.where(revised, finalized, _NEVER)
        self.q_zeroed = np.where(leaving, left[rr], _NEVER)
        self.q_draft, self.q_final = draft, np.where(revised, final, draft)
        self.q_number = self.user_number[user] * n_m + rk

    # -- accounts --------------------------------------------------------------------

    def _make_accounts(self, rng: np.random.Generator, n_opps: int) -> None:
        n = max(40, n_opps // 3)
        self.n_accounts = n
        self.acc_country = _choice(rng, _COUNTRY_WEIGHT, n)
        self.acc_region = _COUNTRY_REGION[self.acc_country]
        self.acc_industry = _choice(rng, _INDUSTRY_WEIGHT, n)
        # Company size is log-normal: many small firms, a long tail of enterprises.
        emp = np.clip(np.round(rng.lognormal(np.log(150), 1.5, n)), 1, 400_000)
        self.acc_employees = emp
        self.acc_revenue = np.round(emp * rng.lognormal(np.log(180_000), 0.45, n), -3)
        self.acc_prefix = rng.integers(0, len(_NAME_PREFIX), n)
        self.acc_core = rng.integers(0, len(_NAME_CORE), n)
        self.acc_suffix = rng.integers(0, len(_NAME_SUFFIX), n)
        # Same name, different company happens; their web domains still differ.
        key = self.acc_prefix * len(_NAME_CORE) + self.acc_core
        order = np.argsort(key, kind="stable")
        starts = _segment_starts(key[order])
        dup_rank = np.empty(n, dtype=np.int64)
        dup_rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        self.acc_domain_n = dup_rank
        # Bigger companies buy more often; the rest is idiosyncratic.
        self.acc_pull = emp**0.3 * rng.lognormal(0.0, 1.0, n)
        self.acc_missing_industry = rng.random(n) < 0.05
        self.acc_missing_employees = rng.random(n) < 0.08
        self.acc_missing_revenue = rng.random(n) < 0.15

    def _finish_accounts(self, rng: np.random.Generator) -> None:
        n = self.n_accounts
        first_use = np.full(n, _NEVER, dtype=np.int64)
        np.minimum.at(first_use, self.opp_account, self.opp_created)
        has_lead = self.lead_account >= 0
        np.minimum.at(first_use, self.lead_account[has_lead], self.lead_created[has_lead])
        used = first_use != _NEVER
        before = (DAY + _lognormal_days(rng, 45.0, 1.0, n) * DAY).astype(np.int64)
        idle = rng.uniform(self.plan_start - 900 * DAY, self.plan_end - DAY, n).astype(np.int64)
        self.acc_created = np.where(used, first_use - before, idle)
        # Later edits: ~15% get new firmographics, a few unused prospects are deleted.
        u = rng.random(n)
        kind = np.where(u < 0.15, 1, 0)
        kind = np.where(~used & (u > 0.97), 2, kind)
        span = (self.last_cutoff + 120 * DAY - self.acc_created).astype(np.float64)
        when = self.acc_created + (rng.random(n) * span).astype(np.int64) + 1
        self.acc_change = np.where(kind > 0, when, _NEVER)
        self.acc_change_kind = kind
        self.acc_employees_new = np.clip(
            np.round(self.acc_employees * rng.lognormal(0.05, 0.15, n)), 1, 400_000
        )
        self.acc_number = _rank(self.acc_created)

    # -- opportunities -----------------------------------------------------------------

    def _make_opportunities(
        self, rng: np.random.Generator, n: int, post_rng: np.random.Generator
    ) -> None:
        self.n_opps = n
        created_plan = np.sort(_grown_times(rng, n, self.plan_start, self.plan_end))
        account = _choice(rng, self.acc_pull, n)
        self.opp_account = account
        region = self.acc_region[account]
        from_lead = rng.random(n) < 0.78

        # Leads of converted opportunities, planned backwards from the conversion.
        qual_wait = 1.0 + _lognormal_days(rng, 4.0, 0.7, n)
        qualified_plan = created_plan - qual_wait * DAY
        created_lead_plan = qualified_plan - (0.1 + _lognormal_days(rng, 8.0, 0.8, n)) * DAY
        working_plan = created_lead_plan + rng.uniform(0.1, 0.5, n) * (
            qualified_plan - created_lead_plan
        )
        when = np.where(from_lead, created_lead_plan, created_plan)
        owner = self._assign_owners(rng, region, when)
        self.opp_owner = owner
        owner_region = self.user_region[owner]

        # Working hours can push a plan time on the last plan day past the final cutoff;
        # such opportunities are created a day earlier instead.
        created = _working_time(created_plan, owner_region)
        late = created > self.last_cutoff - 60
        created_plan[late] -= DAY
        qualified_plan[late] -= DAY
        created_lead_plan[late] -= DAY
        working_plan[late] -= DAY
        created = _working_time(created_plan, owner_region)
        self.opp_created = created

        self.opp_from_lead = from_lead
        self._conv = {
            "created": _working_time(created_lead_plan, owner_region),
            "working": _working_time(working_plan, owner_region),
            "qualified": _working_time(qualified_plan, owner_region),
            "created_plan": created_lead_plan,
            "final_plan": created_plan,
        }
        lead_channel = _choice(rng, _CHANNEL_W_CONVERTED, n)
        self.opp_channel = np.where(from_lead, lead_channel, _OUTBOUND).astype(np.int8)

        # Deal size grows with company size (log-log), with plenty of noise.
        emp = self.acc_employees[account]
        log_amount = np.log(12_000) + 0.4 * (np.log(emp) - np.log(150)) + rng.normal(0, 0.75, n)
        self.opp_amount = np.maximum(1000.0, np.round(np.exp(log_amount), -2))
        self.opp_product = _choice(rng, _PRODUCT_WEIGHT, n)
        self.opp_optimism = rng.lognormal(0.0, 0.3, n)

        start = np.where(
            from_lead,
            np.where(rng.random(n) < 0.65, QUALIFICATION, PROSPECTING),
            np.where(rng.random(n) < 0.80, PROSPECTING, QUALIFICATION),
        ).astype(np.int8)
        junk = rng.random(n) < 0.004  # duplicates/test records, deleted within days
        self.opp_junk = junk
        # Chance a would-be loss is rescued: better reps and warm channels win more.
        bonus = np.where(np.isin(self.opp_channel, [3, 7]), 0.08, 0.0)  # referral, partner
        rescue = np.clip(0.02 + 0.06 * self.rep_skill[owner] + bonus, 0.0, 0.4)
        ev_opp, ev_stage, ev_plan = self._simulate_pipeline(rng, created_plan, start, junk, rescue)
        # After the sale, from a stream of its own: the selling phase above stays as it was.
        self.opp_untended = self._untended_wins(post_rng, ev_opp, ev_stage, ev_plan)
        ev_opp, ev_stage, ev_plan = self._add_renewals(post_rng, ev_opp, ev_stage, ev_plan)
        ev_time = _working_time(ev_plan, owner_region[ev_opp])
        # First stage change = creation exactly (its plan time was moved with `late`).
        first = _segment_starts(ev_opp)
        ev_time[first] = created

        # The first close in plan time bounds the selling phase (touchpoints, revisions).
        closed_plan = np.where(_IS_CLOSED[ev_stage], ev_plan, np.inf)
        first_close_plan = np.minimum.reduceat(closed_plan, first)

        # Amount revisions (~25%), some time during the selling phase.
        revised = (rng.random(n) < 0.25) & ~junk
        rev_plan = created_plan + rng.uniform(0.15, 0.85, n) * (first_close_plan - created_plan)
        rev_plan = np.where(revised, rev_plan, created_plan)
        rev_time = np.where(revised, _working_time(rev_plan, owner_region), _NEVER)
        self.opp_amount_new = np.maximum(
            1000.0, np.round(self.opp_amount * rng.lognormal(-0.03, 0.25, n), -2)
        )
        del_plan = created_plan + np.maximum(1 / 24, _lognormal_days(rng, 1.5, 0.8, n)) * DAY
        del_time = np.where(junk, _working_time(del_plan, owner_region), _NEVER)

        # Versions of each opportunity: stage changes, amount revisions, deletions.
        kinds = np.r_[
            np.zeros(len(ev_opp), np.int8),
            np.ones(revised.sum(), np.int8),
            np.full(junk.sum(), 2, np.int8),
        ]
        v_opp = np.r_[ev_opp, np.flatnonzero(revised), np.flatnonzero(junk)].astype(np.int32)
        v_time = np.r_[ev_time, rev_time[revised], del_time[junk]]
        v_stage = np.r_[ev_stage, np.zeros(revised.sum() + junk.sum(), np.int8)]
        order = np.lexsort((kinds, v_time, v_opp))
        v_opp, v_time, kinds, v_stage = v_opp[order], v_time[order], kinds[order], v_stage[order]
        is_change = kinds == 0

        def ffill(values: np.ndarray, have: np.ndarray) -> np.ndarray:
            # Each opportunity's first version is its creation, which always has a value,
            # so filling forward over the whole array never crosses opportunities.
            src = np.maximum.accumulate(np.where(have, np.arange(len(values)), 0))
            return values[src]

        v_stage = ffill(v_stage, is_change)
        opt = self.opp_optimism[v_opp]
        expected = (v_time + _DAYS_TO_CLOSE[v_stage] * opt * DAY) // DAY
        close_day = np.where(_IS_OPEN[v_stage], expected, v_time // DAY)
        sets_close = is_change & (_IS_OPEN[v_stage] | (v_stage == WON) | (v_stage == LOST))
        self.v_close_day = ffill(close_day, sets_close).astype(np.int32)
        lost_reason = _choice(rng, _LOST_WEIGHT, len(v_opp)).astype(np.int8)
        self.v_lost_reason = np.where(v_stage == LOST, lost_reason, -1).astype(np.int8)
        self.v_opp, self.v_time, self.v_stage, self.v_kind = v_opp, v_time, v_stage, kinds
        self.v_amount = np.where(
            v_time >= rev_time[v_opp], self.opp_amount_new[v_opp], self.opp_amount[v_opp]
        )
        # Find "latest version at or before t" per opportunity by one sorted search.
        self._v_base = int(v_time.min())
        self._v_span = int(v_time.max()) - self._v_base + 1
        self.v_key = v_opp.astype(np.int64) * self._v_span + (v_time - self._v_base)

        # Stage changes as events, ordered by time for export and ids.
        sc = np.flatnonzero(is_change)
        sc = sc[np.lexsort((v_opp[sc], v_time[sc]))]
        self.sc_opp, self.sc_time, self.sc_stage = v_opp[sc], v_time[sc], v_stage[sc]
        self.sc_amount = self.v_amount[sc]
        self.opp_number = _rank(created)
        self._ev = (ev_opp, ev_stage, ev_plan)
        # The wins, for sizing quotas: when, and the amount the deal is won at (a revision
        # always comes before the first close).
        won = np.flatnonzero(ev_stage == WON)
        self.win_opp = ev_opp[won]
        self.win_time = ev_time[won]
        self.win_amount = np.where(revised, self.opp_amount_new, self.opp_amount)[self.win_opp]

    def _untended_wins(
        self,
        rng: np.random.Generator,
        ev_opp: np.ndarray,
        ev_stage: np.ndarray,
        ev_plan: np.ndarray,
    ) -> np.ndarray:
        """Which won deals get no recorded activity after the win: a systematic sample of
        the wins in time order, each with its class's chance (small deals are left alone
        more often). Any run of consecutive wins then holds its expected number of
        untended deals, rounded one way or the other."""
        won = np.flatnonzero(ev_stage == WON)
        opp = ev_opp[won]
        order = np.lexsort((opp, ev_plan[won]))
        opp = opp[order]
        small = self.opp_amount[opp] < _UNTENDED_SMALL_AMOUNT
        p = np.where(small, _UNTENDED_P_SMALL, _UNTENDED_P_LARGE)
        reach = rng.random() + np.cumsum(p)
        untended = np.zeros(len(self.opp_amount), dtype=bool)
        untended[opp] = np.floor(reach) > np.floor(reach - p)
        return untended

    def _add_renewals(
        self,
        rng: np.random.Generator,
        ev_opp: np.ndarray,
        ev_stage: np.ndarray,
        ev_plan: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Append a renewal entry to some deals whose path ends in follow_up (which always
        comes as won → onboarding → follow_up), about two months before the annual term
        ends."""
        last = np.r_[ev_opp[1:] != ev_opp[:-1], True]
        fu = np.flatnonzero(last & (ev_stage == FOLLOW_UP))
        opp = ev_opp[fu]
        won_plan = ev_plan[fu - 2]
        p = np.where(self.opp_untended[opp], _RENEWAL_P_UNTENDED, _RENEWAL_P)
        p = np.where(self.user_leaver[self.opp_owner[opp]], 0.0, p)
        renew = rng.random(fu.size) < p
        days = rng.normal(_RENEWAL_DAYS, _RENEWAL_SD_DAYS, fu.size)
        at = np.maximum(won_plan + days * DAY, ev_plan[fu] + 14 * DAY)
        ev_opp = np.r_[ev_opp, opp[renew]]
        ev_stage = np.r_[ev_stage, np.full(int(renew.sum()), RENEWAL, np.int8)]
        ev_plan = np.r_[ev_plan, at[renew]]
        # A renewal is its deal's last entry: a stable sort by deal keeps time order.
        order = np.argsort(ev_opp, kind="stable")
        return ev_opp[order], ev_stage[order], ev_plan[order]

    def _simulate_pipeline(
        self,
        rng: np.random.Generator,
        created: np.ndarray,
        start: np.ndarray,
        junk: np.ndarray,
        rescue: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every stage change of every opportunity, to the end of its life (plan time).

        ``rescue`` is each deal's chance that a would-be loss moves forward instead. One
        step moves each live deal once; the loop runs until every deal has reached a
        terminal state (a few dozen steps), each step vectorised over the live deals.
        """
        n = len(created)
        stage = start.copy()
        t = created.astype(np.float64).copy()
        revived = np.zeros(n, dtype=bool)
        alive = ~junk
        out_opp = [np.arange(n, dtype=np.int32)]
        out_stage = [stage.copy()]
        out_t = [t.copy()]
        for _ in range(_MAX_STEPS):
            idx = np.flatnonzero(alive)
            if idx.size == 0:
                break
            s = stage[idx]
            u = rng.random(idx.size)
            nxt = np.zeros(idx.size, dtype=np.int8)
            wait = np.zeros(idx.size)

            o = np.flatnonzero(_IS_OPEN[s])
            dst = _choice_rows(rng, _TRANSITION_CDF, s[o])
            saved = (dst == LOST) & (rng.random(o.size) < rescue[idx[o]])
            dst[saved] = _NEXT_UP[s[o][saved]]
            median = _STAGE_MEDIAN_DAYS[s[o]] * np.where(dst == LOST, _LOSS_STALL, 1.0)
            wait[o] = _lognormal_days(rng, median, _STAGE_SIGMA, o.size)
            nxt[o] = dst

            lost = np.flatnonzero(s == LOST)
            back = lost[(u[lost] < _REVIVE_P) & ~revived[idx[lost]]]
            revived[idx[back]] = True
            nxt[back] = _REVIVE_TO[np.searchsorted(_REVIVE_TO_CDF, rng.random(back.size))]
            wait[back] = _lognormal_days(rng, _REVIVE_MEDIAN_DAYS, 0.6, back.size)

            won = np.flatnonzero(s == WON)
            won = won[u[won] < _ONBOARDING_P]
            nxt[won] = ONBOARDING
            wait[won] = _lognormal_days(rng, _ONBOARDING_MEDIAN_DAYS, 0.6, won.size)

            onb = np.flatnonzero(s == ONBOARDING)
            onb = onb[u[onb] < _FOLLOW_UP_P]
            nxt[onb] = FOLLOW_UP
            wait[onb] = _lognormal_days(rng, _FOLLOW_UP_MEDIAN_DAYS, 0.5, onb.size)

            moved = nxt > 0
            alive[idx[~moved]] = False
            mi = idx[moved]
            t[mi] += np.maximum(wait[moved], _MIN_WAIT_DAYS) * DAY
            stage[mi] = nxt[moved]
            out_opp.append(mi.astype(np.int32))
            out_stage.append(stage[mi])
            out_t.append(t[mi])
        still_open = np.flatnonzero(alive & _IS_OPEN[stage])
        if still_open.size:  # the safety net: close whatever is left as lost
            t[still_open] += 30 * DAY
            out_opp.append(still_open.astype(np.int32))
            out_stage.append(np.full(still_open.size, LOST, dtype=np.int8))
            out_t.append(t[still_open])
        ev_opp = np.concatenate(out_opp)
        # Steps append in time order per deal, so a stable sort by deal keeps time order.
        order = np.argsort(ev_opp, kind="stable")
        return ev_opp[order], np.concatenate(out_stage)[order], np.concatenate(out_t)[order]

    # -- leads -------------------------------------------------------------------------

    def _make_leads(self, rng: np.random.Generator) -> None:
        conv = np.flatnonzero(self.opp_from_lead)
        n_conv = conv.size
        # About 30% of leads become opportunities.
        n_other = round(n_conv * (1 / 0.30 - 1))
        n = n_conv + n_other
        self.n_leads = n

        # Leads that never convert: created across the history, some still in play.
        created_plan = _grown_times(rng, n_other, self.plan_start - 30 * DAY, self.plan_end)
        on_account = rng.random(n_other) < 0.35
        account = np.where(on_account, rng.integers(0, self.n_accounts, n_other), -1)
        region = np.where(
            on_account,
            self.acc_region[np.maximum(account, 0)],
            _choice(rng, _REGION_WEIGHT, n_other),
        )
        owner = self._assign_owners(rng, region, created_plan)
        oregion = self.user_region[owner]
        created = _working_time(created_plan, oregion)
        late = created > self.last_cutoff - 60
        created_plan[late] -= DAY
        created = _working_time(created_plan, oregion)

        u = rng.random(n_other)
        touched = u >= 0.06
        working_plan = (
            created_plan + np.maximum(0.05, _lognormal_days(rng, 0.8, 1.0, n_other)) * DAY
        )
        v = rng.random(n_other)
        disq = touched & (v < 0.74)
        pending = touched & (v >= 0.74) & (v < 0.80)  # qualified, never converted
        final_plan = working_plan + (0.1 + _lognormal_days(rng, 10.0, 0.9, n_other)) * DAY
        qual_plan = working_plan + (0.1 + _lognormal_days(rng, 7.0, 0.8, n_other)) * DAY
        deleted = disq & (rng.random(n_other) < 0.015)  # spam, removed after triage
        del_plan = final_plan + (0.1 + _lognormal_days(rng, 3.0, 0.8, n_other)) * DAY

        def when(mask: np.ndarray, plan: np.ndarray) -> np.ndarray:
            return np.where(mask, _working_time(plan, oregion), _NEVER)

        c = self._conv
        opp_owner = self.opp_owner[conv]
        self.lead_created = np.r_[c["created"][conv], created]
        self.lead_working = np.r_[c["working"][conv], when(touched, working_plan)]
        self.lead_qualified = np.r_[c["qualified"][conv], when(pending, qual_plan)]
        # Conversion is minutes before the opportunity appears, except across an export
        # time (06:00 UTC): there the two are simultaneous, so no export ever holds a
        # converted lead whose opportunity it does not contain.
        opp_created = self.opp_created[conv]
        converted = opp_created - rng.integers(30, 900, n_conv)
        converted = np.maximum(converted, self.lead_qualified[:n_conv] + 60)
        export_time = EXPORT_HOUR_UTC * HOUR
        spans_export = (converted - export_time) // DAY != (opp_created - export_time) // DAY
        converted = np.where(spans_export, opp_created, converted)
        self.lead_final = np.r_[converted, when(disq, final_plan)]
        self.lead_final_status = np.r_[
            np.full(n_conv, _L_CONVERTED, np.int8),
            np.where(disq, _L_DISQUALIFIED, 0).astype(np.int8),
        ]
        self.lead_deleted = np.r_[np.full(n_conv, _NEVER, np.int64), when(deleted, del_plan)]
        self.lead_opp = np.r_[conv, np.full(n_other, -1)].astype(np.int32)
        self.lead_owner = np.r_[opp_owner, owner].astype(np.int32)
        self.lead_account = np.r_[self.opp_account[conv], account].astype(np.int32)
        self.lead_channel = np.r_[
            self.opp_channel[conv], _choice(rng, _CHANNEL_W_OTHER, n_other)
        ].astype(np.int8)
        # Scores: converted and qualified leads scored higher, disqualified lower.
        score = np.r_[
            50 + 45 * rng.beta(3, 2, n_conv),
            np.where(
                pending,
                40 + 50 * rng.beta(3, 2, n_other),
                np.where(disq, 100 * rng.beta(1.5, 4, n_other), 100 * rng.beta(2, 3, n_other)),
            ),
        ]
        self.lead_score = np.round(score)
        # Plan-time life span of each lead, for its activities.
        life_end = np.where(disq, final_plan, np.where(pending, qual_plan, created_plan + 30 * DAY))
        self.lead_plan_start = np.r_[c["created_plan"][conv], created_plan]
        self.lead_plan_end = np.r_[c["final_plan"][conv], life_end]
        self.lead_touched = np.r_[np.ones(n_conv, bool), touched]
        # People and companies on leads that are not (yet) accounts.
        self.lead_first = _choice(rng, np.ones(len(_FIRST_NAMES)), n)
        self.lead_last = _choice(rng, np.ones(len(_LAST_NAMES)), n)
        self.lead_company = rng.integers(0, len(_NAME_PREFIX) * len(_NAME_CORE), n)
        self.lead_freemail = rng.random(n) < 0.15
        self.lead_number = _rank(self.lead_created)
        # Drawn last, so the leads above are the same with or without the gaps.
        self.lead_no_channel = rng.random(n) < _NO_CHANNEL_P
        self.opp_no_source = np.zeros(self.n_opps, dtype=bool)
        self.opp_no_source[conv] = self.lead_no_channel[:n_conv]

    # -- contacts ----------------------------------------------------------------------

    def _make_contacts(self, rng: np.random.Generator) -> None:
        per = 1 + rng.poisson(0.6 + 0.45 * np.log10(self.acc_employees))
        account = np.repeat(np.arange(self.n_accounts), per).astype(np.int32)
        n_real = account.size
        self.acc_contact_first = np.r_[0, np.cumsum(per)[:-1]]
        self.acc_contact_count = per
        # Duplicate records of the same person, entered later; half are merged away.
        dup_of = np.flatnonzero(rng.random(n_real) < 0.015)
        n = n_real + dup_of.size
        self.n_contacts = n
        self.con_account = np.r_[account, account[dup_of]]
        first = _choice(rng, np.ones(len(_FIRST_NAMES)), n_real)
        last = _choice(rng, np.ones(len(_LAST_NAMES)), n_real)
        self.con_first = np.r_[first, first[dup_of]]
        self.con_last = np.r_[last, last[dup_of]]
        self.con_title = _choice(rng, _TITLE_WEIGHT, n)
        self.con_title_new = _choice(rng, _TITLE_WEIGHT, n)
        # The e-mail local part is first.last, plus a number when it would repeat at the
        # account; duplicates copy the original's address.
        key = (account.astype(np.int64) * len(_FIRST_NAMES) + first) * len(_LAST_NAMES) + last
        order = np.argsort(key, kind="stable")
        starts = _segment_starts(key[order])
        rank = np.empty(n_real, dtype=np.int64)
        rank[order] = np.arange(n_real) - np.repeat(starts, np.diff(np.r_[starts, n_real]))
        self.con_email_n = np.r_[rank, rank[dup_of]]
        self.con_has_email = np.r_[rng.random(n_real) >= 0.03, np.ones(dup_of.size, bool)]
        self.con_has_phone = rng.random(n) >= 0.15
        self.con_phone = rng.integers(200_000_0000, 999_999_9999, n)

        created = self.acc_created[account] + rng.integers(60, DAY - 60, n_real)
        dup_created = created[dup_of] + (_lognormal_days(rng, 60, 0.8, dup_of.size) * DAY).astype(
            np.int64
        )
        self.con_created = np.r_[created, dup_created]
        merged = np.r_[np.zeros(n_real, bool), rng.random(dup_of.size) < 0.5]
        span = (self.last_cutoff + 200 * DAY - self.con_created).astype(np.float64)
        retitled = rng.random(n) < 0.10
        change = self.con_created + 1 + (rng.random(n) * span).astype(np.int64)
        self.con_retitled = np.where(retitled & ~merged, change, _NEVER)
        merge_at = self.con_created + (_lognormal_days(rng, 20, 0.8, n) * DAY).astype(np.int64)
        self.con_deleted = np.where(merged, merge_at, _NEVER)
        self.con_number = _rank(self.con_created)

    def _random_contact(self, rng: np.random.Generator, account: np.ndarray) -> np.ndarray:
        """A real (non-duplicate) contact of each account."""
        first = self.acc_contact_first[account]
        return (
            first + (rng.random(len(account)) * self.acc_contact_count[account]).astype(np.int64)
        ).astype(np.int32)

    # -- activities --------------------------------------------------------------------

    def _make_activities(self, rng: np.random.Generator) -> None:
        ev_opp, ev_stage, ev_plan = self._ev
        del self._ev
        # Each stage change opens an interval that lasts until the deal's next change;
        # terminal stages get a fixed window. Activities fall uniformly inside.
        same_next = np.r_[ev_opp[1:] == ev_opp[:-1], False]
        end = np.where(
            same_next, np.r_[ev_plan[1:], 0.0], ev_plan + _TERMINAL_WINDOW_DAYS[ev_stage] * DAY
        )
        length = end - ev_plan
        rate = _ACTIVITY_RATE[ev_stage].copy()
        # Long stays in an open stage take a few more touches, short ones fewer.
        open_ = _IS_OPEN[ev_stage]
        med = np.where(open_, _STAGE_MEDIAN_DAYS[ev_stage], 1.0) * DAY
        rate[open_] *= np.clip((length[open_] / med[open_]) ** 0.3, 0.6, 1.8)
        rate[self.opp_junk[ev_opp]] = 0.0
        # Untended wins: nothing recorded after the win (not even at their renewal); the
        # others get at least one touch between the win and onboarding (or within the
        # 30 days after the win, without onboarding).
        untended = self.opp_untended[ev_opp]
        rate[untended & _POST_WIN[ev_stage]] = 0.0
        count = rng.poisson(rate)
        tended_win = (ev_stage == WON) & ~untended
        count[tended_win] = np.maximum(count[tended_win], 1)
        src = np.repeat(np.arange(len(ev_opp)), count)
        opp = ev_opp[src]
        plan = ev_plan[src] + rng.random(src.size) * length[src]
        ctx = ev_stage[src].astype(np.int64)
        owner = self.opp_owner[opp]
        time_opp = _working_time(plan, self.user_region[owner])
        account = self.opp_account[opp]
        contact = np.where(rng.random(src.size) < 0.85, self._random_contact(rng, account), -1)

        # Lead activities: before conversion or disqualification, linked to the lead only.
        lrate = np.where(self.lead_opp >= 0, 2.0, np.where(self.lead_touched, 1.0, 0.0))
        lcount = rng.poisson(lrate)
        lsrc = np.repeat(np.arange(self.n_leads), lcount)
        lspan = self.lead_plan_end[lsrc] - self.lead_plan_start[lsrc]
        lplan = self.lead_plan_start[lsrc] + rng.random(lsrc.size) * lspan
        lowner = self.lead_owner[lsrc]
        ltime = _working_time(lplan, self.user_region[lowner])
        # Conversion times were set from the opportunity's, not by the lead's working-hours
        # map; keep lead activities inside the lead's recorded life.
        ltime = np.clip(ltime, self.lead_created[lsrc], self.lead_final[lsrc])

        n_opp, n_lead = src.size, lsrc.size

        def cat(a: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
            return np.concatenate([a.astype(dtype, copy=False), b.astype(dtype, copy=False)])

        none = np.full(max(n_opp, n_lead), -1, dtype=np.int32)
        self.act_time = cat(time_opp, ltime, np.int64)
        self.act_owner = cat(owner, lowner, np.int32)
        self.act_opp = cat(opp, none[:n_lead], np.int32)
        self.act_lead = cat(none[:n_opp], lsrc, np.int32)
        self.act_contact = cat(contact, none[:n_lead], np.int32)
        self.act_account = cat(account, none[:n_lead], np.int32)
        ctx_all = cat(ctx, np.full(n_lead, _CTX_LEAD), np.int8)
        act_type = _choice_rows(rng, _TYPE_CDF, ctx_all)
        self.act_type = act_type
        self.act_subject = (
            act_type.astype(np.int32) * _SUBJECT_VARIANTS
            + rng.integers(0, _SUBJECT_VARIANTS, act_type.size)
        ).astype(np.int16)
        # Some calls and meetings were scheduled but did not happen.
        self.act_completed = ~(_ACT_MEETING_LIKE[act_type] & (rng.random(act_type.size) < 0.05))
        order = np.argsort(self.act_time, kind="stable")
        for name in (
            "act_time",
            "act_owner",
            "act_opp",
            "act_lead",
            "act_contact",
            "act_account",
            "act_type",
            "act_subject",
            "act_completed",
        ):
            setattr(self, name, getattr(self, name)[order])
        # Already in time order, so the id number is the position.
        self.act_number = np.arange(1, self.act_time.size + 1, dtype=np.int64)

    # -- export ------------------------------------------------------------------------

    def export(self, entity: str, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        """The rows of ``entity`` in the export taken at ``cutoff``.

        A full export when ``previous`` is None, else the incremental one since the
        export at ``previous`` (events re-sent from OVERLAP_SECONDS before it).
        """
        return getattr(self, f"_export_{entity}")(cutoff, previous, fmt)

    @staticmethod
    def _versioned_rows(
        created: np.ndarray,
        updated: np.ndarray,
        number: np.ndarray,
        cutoff: int,
        previous: int | None,
    ) -> np.ndarray:
        """Positions to export, in id order: known at the cutoff and, for an incremental,
        changed since the previous one."""
        keep = created <= cutoff
        if previous is not None:
            keep &= updated > previous
        rows = np.flatnonzero(keep)
        return rows[np.argsort(number[rows], kind="stable")]

    def _event_slice(self, times: np.ndarray, cutoff: int, previous: int | None) -> slice:
        lo = (
            0
            if previous is None
            else np.searchsorted(times, previous - OVERLAP_SECONDS, side="right")
        )
        return slice(int(lo), int(np.searchsorted(times, cutoff, side="right")))

    def _export_users(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        updated = _last_at_or_before(cutoff, self.user_created, self.user_left)
        r = self._versioned_rows(self.user_created, updated, self.user_number, cutoff, previous)
        first, last = self.user_first[r], self.user_last[r]
        team = self.user_team[r]
        name = _join(
            _take([f for f, _ in _FIRST_NAMES], first),
            " ",
            _take([s for s, _ in _LAST_NAMES], last),
        )
        # Users are few; a per-user suffix keeps their addresses unique.
        email = _join(
            _take([e for _, e in _FIRST_NAMES], first),
            ".",
            _take([e for _, e in _LAST_NAMES], last),
            ".",
            pa.array(self.user_number[r].astype(str)),
            "@salesco.example",
        )
        team_names = [
            f"{c} Team {k}" for c, k in zip(self.team_code, self.team_number, strict=True)
        ]
        region_idx = self.user_region[r]
        manager = self.user_manager[r]
        return _table(
            "users",
            {
                "user_id": self._ref("user", r),
                "name": name,
                "email": email,
                "team": _take(team_names or [""], np.maximum(team, 0), team >= 0),
                "manager_id": self._ref("user", manager),
                "region": _take([x[0] for x in _REGIONS], region_idx),
                "is_active": _bool_col(~(self.user_left[r] <= cutoff)),
                "created_at": _ts_col(self.user_created[r], fmt),
                "updated_at": _ts_col(updated[r], fmt),
            },
        )

    def _account_domains(self, rows: np.ndarray) -> pa.Array:
        slug = _take([p.lower() for p in _NAME_PREFIX], self.acc_prefix[rows])
        core = _take(list(_NAME_CORE), self.acc_core[rows])
        n = self.acc_domain_n[rows]
        num = _null_where(pa.array((n + 1).astype(str)), n > 0)
        num = pc.fill_null(num, "")
        return _join(slug, core, num, ".example")

    def _account_names(self, rows: np.ndarray) -> pa.Array:
        return _join(
            _take(list(_NAME_PREFIX), self.acc_prefix[rows]),
            _take(list(_NAME_CORE), self.acc_core[rows]),
            " ",
            _take(list(_NAME_SUFFIX), self.acc_suffix[rows]),
        )

    def _export_accounts(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        updated = _last_at_or_before(cutoff, self.acc_created, self.acc_change)
        r = self._versioned_rows(self.acc_created, updated, self.acc_number, cutoff, previous)
        changed = self.acc_change[r] <= cutoff
        kind = self.acc_change_kind[r]
        emp = np.where(changed & (kind == 1), self.acc_employees_new[r], self.acc_employees[r])
        has_emp = ~self.acc_missing_employees[r] | (changed & (kind == 1))
        has_rev = ~self.acc_missing_revenue[r] | (changed & (kind == 1))
        return _table(
            "accounts",
            {
                "account_id": self._ref("acc", r),
                "name": self._account_names(r),
                "industry": _take(_INDUSTRIES, self.acc_industry[r], ~self.acc_missing_industry[r]),
                "country": _take([c[0] for c in _COUNTRIES], self.acc_country[r]),
                "employee_count": _int_col(emp, has_emp),
                "annual_revenue": _double_col(self.acc_revenue[r], fmt, has_rev),
                "created_at": _ts_col(self.acc_created[r], fmt),
                "updated_at": _ts_col(updated[r], fmt),
                "is_deleted": _bool_col(changed & (kind == 2)),
            },
        )

    def _export_contacts(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        updated = _last_at_or_before(cutoff, self.con_created, self.con_retitled, self.con_deleted)
        r = self._versioned_rows(self.con_created, updated, self.con_number, cutoff, previous)
        acc = self.con_account[r]
        n = self.con_email_n[r]
        num = pc.fill_null(_null_where(pa.array((n + 1).astype(str)), n > 0), "")
        email = _join(
            _take([e for _, e in _FIRST_NAMES], self.con_first[r]),
            ".",
            _take([e for _, e in _LAST_NAMES], self.con_last[r]),
            num,
            "@",
            self._account_domains(acc),
        )
        cc = _take([c[3] for c in _COUNTRIES], self.acc_country[acc])
        digits = _digits(self.con_phone[r], 10)
        spaced = np.full((len(r), 12), ord(" "), dtype=np.uint8)
        spaced[:, 0:3], spaced[:, 4:7], spaced[:, 8:12] = (
            digits[:, 0:3],
            digits[:, 3:6],
            digits[:, 6:],
        )
        phone = _null_where(_join(cc, " ", _fixed_strings(spaced)), self.con_has_phone[r])
        title = np.where(self.con_retitled[r] <= cutoff, self.con_title_new[r], self.con_title[r])
        return _table(
            "contacts",
            {
                "contact_id": self._ref("con", r),
                "account_id": self._ref("acc", acc),
                "first_name": _take([f for f, _ in _FIRST_NAMES], self.con_first[r]),
                "last_name": _take([s for s, _ in _LAST_NAMES], self.con_last[r]),
                "email": _null_where(email, self.con_has_email[r]),
                "phone": phone,
                "title": _take(_TITLES, title),
                "created_at": _ts_col(self.con_created[r], fmt),
                "updated_at": _ts_col(updated[r], fmt),
                "is_deleted": _bool_col(self.con_deleted[r] <= cutoff),
            },
        )

    def _export_leads(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        updated = _last_at_or_before(
            cutoff,
            self.lead_created,
            self.lead_working,
            self.lead_qualified,
            self.lead_final,
            self.lead_deleted,
        )
        r = self._versioned_rows(self.lead_created, updated, self.lead_number, cutoff, previous)
        final_seen = self.lead_final[r] <= cutoff
        qual_seen = self.lead_qualified[r] <= cutoff
        status = np.where(
            final_seen,
            self.lead_final_status[r],
            np.where(
                qual_seen,
                _L_QUALIFIED,
                np.where(self.lead_working[r] <= cutoff, _L_WORKING, _L_NEW),
            ),
        )
        converted = final_seen & (self.lead_final_status[r] == _L_CONVERTED)
        # A converted lead is qualified at latest when it converts.
        qualified_at = np.where(qual_seen, self.lead_qualified[r], _NEVER)
        acc = self.lead_account[r]
        on_acc = acc >= 0
        acc0 = np.maximum(acc, 0)
        company_new = _join(
            _take(list(_NAME_PREFIX), self.lead_company[r] // len(_NAME_CORE)),
            _take(list(_NAME_CORE), self.lead_company[r] % len(_NAME_CORE)),
            " ",
            _take(list(_NAME_SUFFIX), self.lead_company[r] % len(_NAME_SUFFIX)),
        )
        company = pc.if_else(pa.array(on_acc), self._account_names(acc0), company_new)
        new_domain = _join(
            _take([p.lower() for p in _NAME_PREFIX], self.lead_company[r] // len(_NAME_CORE)),
            _take(list(_NAME_CORE), self.lead_company[r] % len(_NAME_CORE)),
            ".example",
        )
        domain = pc.if_else(pa.array(on_acc), self._account_domains(acc0), new_domain)
        free = _take(["webmail.example", "inbox.example"], self.lead_company[r] % 2)
        domain = pc.if_else(pa.array(self.lead_freemail[r] & ~on_acc), free, domain)
        email = _join(
            _take([e for _, e in _FIRST_NAMES], self.lead_first[r]),
            ".",
            _take([e for _, e in _LAST_NAMES], self.lead_last[r]),
            "@",
            domain,
        )
        opp = self.lead_opp[r]
        conv_opp = np.where(converted, opp, -1)
        return _table(
            "leads",
            {
                "lead_id": self._ref("lead", r),
                "created_at": _ts_col(self.lead_created[r], fmt),
                "email": email,
                "company": company,
                "channel": _take(_CHANNELS, self.lead_channel[r], ~self.lead_no_channel[r]),
                "status": _take(_LEAD_STATUSES, status),
                "score": _double_col(self.lead_score[r], fmt),
                "owner_id": self._ref("user", self.lead_owner[r]),
                "qualified_at": _ts_col(qualified_at, fmt),
                "converted_at": _ts_col(np.where(converted, self.lead_final[r], _NEVER), fmt),
                "converted_opportunity_id": self._ref("opp", conv_opp),
                "updated_at": _ts_col(updated[r], fmt),
                "is_deleted": _bool_col(self.lead_deleted[r] <= cutoff),
            },
        )

    def _export_opportunities(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        candidates = np.flatnonzero(self.opp_created <= cutoff)
        offset = min(cutoff - self._v_base, self._v_span - 1)  # never into the next deal
        probe = candidates.astype(np.int64) * self._v_span + offset
        v = np.searchsorted(self.v_key, probe, side="right") - 1
        if previous is not None:
            fresh = self.v_time[v] > previous
            candidates, v = candidates[fresh], v[fresh]
        order = np.argsort(self.opp_number[candidates], kind="stable")
        r, v = candidates[order], v[order]
        stage = self.v_stage[v]
        acc = self.opp_account[r]
        name = _join(self._account_names(acc), " - ", _take(_PRODUCTS, self.opp_product[r]))
        lost = self.v_lost_reason[v]
        return _table(
            "opportunities",
            {
                "opportunity_id": self._ref("opp", r),
                "created_at": _ts_col(self.opp_created[r], fmt),
                "stage": _take(_STAGE_LABEL, stage),
                "owner_id": self._ref("user", self.opp_owner[r]),
                "account_id": self._ref("acc", acc),
                "name": name,
                "amount": _double_col(self.v_amount[v], fmt),
                "currency": _take(["USD"], np.zeros(len(r), dtype=np.int32)),
                "probability": _double_col(_STAGE_PROB[stage], "parquet"),
                "lead_source": _take(_CHANNELS, self.opp_channel[r], ~self.opp_no_source[r]),
                "close_date": _date_col(self.v_close_day[v]),
                "is_closed": _bool_col(_IS_CLOSED[stage]),
                "is_won": _bool_col(_IS_WON[stage]),
                "lost_reason": _take(_LOST_REASONS, np.maximum(lost, 0), lost >= 0),
                "updated_at": _ts_col(self.v_time[v], fmt),
                "is_deleted": _bool_col(self.v_kind[v] == 2),
            },
        )

    def _export_quotas(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        updated = _last_at_or_before(cutoff, self.q_created, self.q_revised, self.q_zeroed)
        r = self._versioned_rows(self.q_created, updated, self.q_number, cutoff, previous)
        amount = np.where(
            self.q_zeroed[r] <= cutoff,
            0.0,
            np.where(self.q_revised[r] <= cutoff, self.q_final[r], self.q_draft[r]),
        )
        return _table(
            "quotas",
            {
                "owner_id": self._ref("user", self.q_owner[r]),
                "month": _date_col(self.q_month[r]),
                "amount": _double_col(amount, fmt),
                "currency": _take(_CURRENCIES, self.q_currency[r]),
            },
        )

    def _export_fx_rates(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        s = self._event_slice(self.fx_time, cutoff, previous)
        n = s.stop - s.start
        return _table(
            "fx_rates",
            {
                "currency": _take(["EUR"], np.zeros(n, dtype=np.int32)),
                "rate_date": _date_col(self.fx_day[s]),
                "rate_to_reporting": _double_col(self.fx_rate[s], fmt),
            },
        )

    def _export_stage_changes(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        s = self._event_slice(self.sc_time, cutoff, previous)
        opp = self.sc_opp[s]
        # Ids follow the global time order of changes, fixed regardless of batching.
        number = np.arange(s.start, s.stop, dtype=np.int64) + 1
        return _table(
            "stage_changes",
            {
                "opportunity_id": self._ref("opp", opp),
                "stage": _take(_STAGE_LABEL, self.sc_stage[s]),
                "changed_at": _ts_col(self.sc_time[s], fmt),
                "change_id": _ids("SC-", number, 10),
                "amount": _double_col(self.sc_amount[s], fmt),
                "changed_by": self._ref("user", self.opp_owner[opp]),
            },
        )

    def _export_activities(self, cutoff: int, previous: int | None, fmt: str) -> pa.Table:
        s = self._event_slice(self.act_time, cutoff, previous)
        opp, lead = self.act_opp[s], self.act_lead[s]
        contact, acc = self.act_contact[s], self.act_account[s]
        subjects = [x for variants in _SUBJECTS for x in variants]
        return _table(
            "activities",
            {
                "activity_id": _ids("ACT-", self.act_number[s], 10),
                "activity_type": _take(_ACTIVITY_TYPES, self.act_type[s]),
                "occurred_at": _ts_col(self.act_time[s], fmt),
                "owner_id": self._ref("user", self.act_owner[s]),
                "opportunity_id": self._ref("opp", opp),
                "lead_id": self._ref("lead", lead),
                "contact_id": self._ref("con", contact),
                "account_id": self._ref("acc", acc),
                "subject": _take(subjects, self.act_subject[s]),
                "is_completed": _bool_col(self.act_completed[s]),
            },
        )
