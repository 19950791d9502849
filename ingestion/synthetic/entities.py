"""The entity generators: users and their teams, exchange rates and quotas, accounts,
opportunities and their stage paths, leads, contacts and activities, each sampled in bulk
with numpy. A mixin of ``_World`` (world.py); its methods read and set the world's arrays.

Why one module (~900 lines): the generators are one data flow over the world's arrays,
run in a fixed order in which each reads what the earlier ones made (owners, accounts,
the leads behind opportunities); split into modules, that order and the arrays they
share would be spread over files. The parameters, sampling helpers and exports are apart.
"""

from __future__ import annotations

import numpy as np

from ingestion.synthetic.params import (
    _ACT_MEETING_LIKE,
    _ACTIVITY_RATE,
    _CHANNEL_W_CONVERTED,
    _CHANNEL_W_OTHER,
    _COUNTRY_REGION,
    _COUNTRY_WEIGHT,
    _CTX_LEAD,
    _DAYS_TO_CLOSE,
    _EUR_REGIONS,
    _FIRST_NAMES,
    _FOLLOW_UP_MEDIAN_DAYS,
    _FOLLOW_UP_P,
    _FX_CENTRE,
    _FX_DAILY_SIGMA,
    _FX_LOG_RANGE,
    _FX_PUBLISH_HOUR,
    _INDUSTRY_WEIGHT,
    _IS_CLOSED,
    _IS_OPEN,
    _L_CONVERTED,
    _L_DISQUALIFIED,
    _LAST_NAMES,
    _LOSS_STALL,
    _LOST_WEIGHT,
    _MAX_STEPS,
    _MIN_WAIT_DAYS,
    _NAME_CORE,
    _NAME_PREFIX,
    _NAME_SUFFIX,
    _NEVER,
    _NEXT_UP,
    _NO_CHANNEL_P,
    _ONBOARDING_MEDIAN_DAYS,
    _ONBOARDING_P,
    _OUTBOUND,
    _POST_WIN,
    _PRODUCT_WEIGHT,
    _QUOTA_FINALIZE_DAYS,
    _QUOTA_FIT_FILL,
    _QUOTA_MIN_FILL,
    _QUOTA_MONTHS_AHEAD,
    _QUOTA_NOISE_SIGMA,
    _QUOTA_PUBLISH_DAYS,
    _QUOTA_PUBLISH_HOUR,
    _QUOTA_RAMP_MONTHS,
    _QUOTA_REVISED_P,
    _QUOTA_REVISION_SIGMA,
    _QUOTA_ROUND,
    _QUOTA_STRETCH,
    _REGION_WEIGHT,
    _REGIONS,
    _RENEWAL_DAYS,
    _RENEWAL_P,
    _RENEWAL_P_UNTENDED,
    _RENEWAL_SD_DAYS,
    _REVIVE_MEDIAN_DAYS,
    _REVIVE_P,
    _REVIVE_TO,
    _REVIVE_TO_CDF,
    _STAGE_MEDIAN_DAYS,
    _STAGE_SIGMA,
    _SUBJECT_VARIANTS,
    _TERMINAL_WINDOW_DAYS,
    _TITLE_WEIGHT,
    _TRANSITION_CDF,
    _TYPE_CDF,
    _UNTENDED_P_LARGE,
    _UNTENDED_P_SMALL,
    _UNTENDED_SMALL_AMOUNT,
    DAY,
    EXPORT_HOUR_UTC,
    FOLLOW_UP,
    HISTORY_DAYS,
    HOUR,
    LOST,
    ONBOARDING,
    PROSPECTING,
    QUALIFICATION,
    RENEWAL,
    WON,
)
from ingestion.synthetic.sampling import (
    _choice,
    _choice_rows,
    _grown_times,
    _last_at_or_before,
    _lognormal_days,
    _pick_in_groups,
    _rank,
    _rep_count,
    _segment_starts,
    _working_time,
)


class _EntityGenerators:
    """The simulation half of ``_World`` (world.py): each ``_make_*`` samples one entity's
    records and history into numpy attributes of the world, in the order of
    ``_World.simulate``; later generators read what earlier ones made.
    """

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
