"""The exports: one entity's rows in the export taken at a cutoff, full or incremental
(versioned entities changed since the previous cutoff, events with the re-sent overlap),
as Arrow tables in the landing contract's columns. A mixin of ``_World`` (world.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.synthetic.columns import (
    _bool_col,
    _date_col,
    _digits,
    _double_col,
    _fixed_strings,
    _ids,
    _int_col,
    _join,
    _null_where,
    _table,
    _take,
    _ts_col,
)
from ingestion.synthetic.params import (
    _ACTIVITY_TYPES,
    _CHANNELS,
    _COUNTRIES,
    _CURRENCIES,
    _FIRST_NAMES,
    _INDUSTRIES,
    _IS_CLOSED,
    _IS_WON,
    _L_CONVERTED,
    _L_NEW,
    _L_QUALIFIED,
    _L_WORKING,
    _LAST_NAMES,
    _LEAD_STATUSES,
    _LOST_REASONS,
    _NAME_CORE,
    _NAME_PREFIX,
    _NAME_SUFFIX,
    _NEVER,
    _PRODUCTS,
    _REGIONS,
    _STAGE_LABEL,
    _STAGE_PROB,
    _SUBJECTS,
    _TITLES,
    OVERLAP_SECONDS,
)
from ingestion.synthetic.sampling import _last_at_or_before


class _Exports:
    """The export half of ``_World`` (world.py): the rows of an entity as the CRM would
    export them at a cutoff (full or incremental), built from the simulated arrays.
    """

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
