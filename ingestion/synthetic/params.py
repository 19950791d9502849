"""The simulated world's parameters: reference data (regions, countries, names, channels),
the stage codes and the pipeline model (transitions, durations, activity rates), quotas and
exchange rates. Constants only, computed once at import; the generators in entities.py read
them, nothing here samples.
"""

from __future__ import annotations

import numpy as np

from ingestion.schema import ACTIVITY_TYPES, CHANNELS
from ingestion.stages import DEFAULT_STAGES

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
