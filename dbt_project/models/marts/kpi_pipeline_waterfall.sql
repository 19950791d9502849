-- How the pipeline moved each month (docs/kpis.md): what was open at the start, what came in,
-- what was won and lost, what is open at the end. Only opportunities that are open at
-- some moment count (closed_at after created_at, or open at as_of), so
-- opening + created - won - lost = closing holds exactly (assert_waterfall_balances).
-- A deal that closes at or before its creation is never open: it is counted in
-- excluded_count of its creation month instead (a data defect to look at).
-- closing is kpi_monthly's open at the end of the month (int_opportunities_open_at_month_end);
-- opening is the previous month's closing.

with months as (
    select month from {{ ref('int_months_spined') }}
),

opportunities as (
    select
        *,
        closed_at is null or closed_at > created_at as is_ever_open
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
),

open_at_month_end as (
    select * from {{ ref('int_opportunities_open_at_month_end') }}
),

created as (
    select
        {{ month_of('created_at') }} as month,
        sum(case when is_ever_open then 1 else 0 end) as created_count,
        {{ exact_sum('case when is_ever_open then amount_reporting end') }} as created_amount,
        sum(case when is_ever_open then 0 else 1 end) as excluded_count
    from opportunities
    group by {{ month_of('created_at') }}
),

closed as (
    select
        {{ month_of('closed_at') }} as month,
        sum(case when status = 'won' then 1 else 0 end) as won_count,
        {{ exact_sum("case when status = 'won' then amount_reporting end") }} as won_amount,
        sum(case when status = 'lost' then 1 else 0 end) as lost_count,
        {{ exact_sum("case when status = 'lost' then amount_reporting end") }} as lost_amount
    from opportunities
    where is_ever_open
        and status in ('won', 'lost')
    group by {{ month_of('closed_at') }}
),

closing as (
    select
        month,
        count(*) as closing_count,
        {{ exact_sum('amount_reporting') }} as closing_amount
    from open_at_month_end
    group by month
),

joined as (
    select
        months.month,
        coalesce(created.created_count, 0) as created_count,
        coalesce(created.created_amount, 0) as created_amount,
        coalesce(closed.won_count, 0) as won_count,
        coalesce(closed.won_amount, 0) as won_amount,
        coalesce(closed.lost_count, 0) as lost_count,
        coalesce(closed.lost_amount, 0) as lost_amount,
        coalesce(closing.closing_count, 0) as closing_count,
        coalesce(closing.closing_amount, 0) as closing_amount,
        coalesce(created.excluded_count, 0) as excluded_count
    from months
    left join created
        on months.month = created.month
    left join closed
        on months.month = closed.month
    left join closing
        on months.month = closing.month
),

with_opening as (
    select
        joined.*,
        -- The month grid is dense: the previous row is the previous month.
        coalesce(lag(closing_count) over (order by month), 0) as opening_count,
        coalesce(lag(closing_amount) over (order by month), 0) as opening_amount
    from joined
)

select
    cast(month as date) as month,
    cast(opening_count as {{ dbt.type_bigint() }}) as opening_count,
    cast(opening_amount as {{ type_double() }}) as opening_amount,
    cast(created_count as {{ dbt.type_bigint() }}) as created_count,
    cast(created_amount as {{ type_double() }}) as created_amount,
    cast(won_count as {{ dbt.type_bigint() }}) as won_count,
    cast(won_amount as {{ type_double() }}) as won_amount,
    cast(lost_count as {{ dbt.type_bigint() }}) as lost_count,
    cast(lost_amount as {{ type_double() }}) as lost_amount,
    cast(closing_count as {{ dbt.type_bigint() }}) as closing_count,
    cast(closing_amount as {{ type_double() }}) as closing_amount,
    cast(excluded_count as {{ dbt.type_bigint() }}) as excluded_count
from with_opening
order by month
