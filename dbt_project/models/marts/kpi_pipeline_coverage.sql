-- Each rep against their quota, per quota month (docs/kpis.md): attainment for every
-- quota month, and for the months from the month of as_of on, whether the open pipeline
-- expected to close in the month can cover what is left of the quota.
-- * quota_amount: in the reporting currency (int_quotas_converted).
-- * won_amount: the owner's won deals (status at as_of) closed in the month, up to as_of.
-- * remaining_quota = max(quota - won, 0).
-- * open_amount / expected_amount: the owner's deals open at as_of whose expected close
--   month is the month (fct_forecast); null for months before the month of as_of.
-- * coverage ratios: open (or expected) / remaining; null when remaining is 0 or the
--   month is past.

with quotas as (
    select * from {{ ref('int_quotas_converted') }}
),

won as (
    select
        owner_id,
        {{ month_of('closed_at') }} as month,
        {{ exact_sum('amount_reporting') }} as won_amount
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
        and status = 'won'
        and owner_id is not null
    group by owner_id, {{ month_of('closed_at') }}
),

expected as (
    select
        owner_id,
        expected_close_month as month,
        {{ exact_sum('amount_reporting') }} as open_amount,
        {{ exact_sum('expected_amount') }} as expected_amount
    from {{ ref('fct_forecast') }}
    where owner_id is not null
    group by owner_id, expected_close_month
),

joined as (
    select
        quotas.owner_id,
        quotas.month,
        quotas.quota_amount,
        coalesce(won.won_amount, 0) as won_amount,
        quotas.month >= {{ month_of(as_of()) }} as is_current_or_later,
        coalesce(expected.open_amount, 0) as open_amount,
        coalesce(expected.expected_amount, 0) as expected_amount
    from quotas
    left join won
        on quotas.owner_id = won.owner_id
        and quotas.month = won.month
    left join expected
        on quotas.owner_id = expected.owner_id
        and quotas.month = expected.month
),

with_remaining as (
    select
        joined.*,
        case
            when quota_amount - won_amount > 0 then quota_amount - won_amount
            else 0
        end as remaining_quota
    from joined
)

select
    cast(owner_id as {{ dbt.type_string() }}) as owner_id,
    cast(month as date) as month,
    cast(quota_amount as {{ type_double() }}) as quota_amount,
    cast(won_amount as {{ type_double() }}) as won_amount,
    cast({{ safe_divide('won_amount', 'quota_amount') }} as {{ type_double() }}) as attainment,
    cast(remaining_quota as {{ type_double() }}) as remaining_quota,
    cast(case when is_current_or_later then open_amount end as {{ type_double() }})
        as open_amount,
    cast(case when is_current_or_later then expected_amount end as {{ type_double() }})
        as expected_amount,
    cast(
        case when is_current_or_later then {{ safe_divide('open_amount', 'remaining_quota') }} end
        as {{ type_double() }}
    ) as coverage_ratio,
    cast(
        case when is_current_or_later then {{ safe_divide('expected_amount', 'remaining_quota') }} end
        as {{ type_double() }}
    ) as weighted_coverage_ratio
from with_remaining
order by owner_id, month
