{#
    The monthly pipeline measures of docs/kpis.md, shared by kpi_monthly (by_owner=false: one
    row per month) and kpi_rep_monthly (by_owner=true: one row per owner and month, plus
    activities_count, avg_touchpoints_per_won, and the month's quota_amount in the
    reporting currency with attainment = won_amount / quota_amount, null without a quota).
    Non-deleted opportunities only.

    * created measures by month of created_at; won/lost measures by month of closed_at;
      amounts in the reporting currency (amount_reporting; a null amount adds nothing).
    * cycle measures over won deals closed in the month.
    * *_end: opportunities open at the month's end (int_opportunities_open_at_month_end).
    * pipeline_velocity_per_day = open_count_end x win rate x avg deal size / avg cycle,
      the last three over deals closed in the three months ending with the month; null
      when a part is null or the cycle is 0. The month grid is dense (every month of the
      spine, and for reps every month for every owner), so the trailing window is
      "2 preceding rows to the current row".
    * Counts and amounts are 0 when nothing happened; ratios are null when undefined.
    * Money and durations are added up exactly (macros/types.sql: exact_sum), so reruns
      give byte-identical results.
#}
{% macro pipeline_kpis(by_owner=false) -%}
{%- set key = 'owner_id, month' if by_owner else 'month' -%}
{%- set partition = 'partition by owner_id ' if by_owner else '' -%}

with months as (
    select month from {{ ref('int_months_spined') }}
),

opportunities as (
    select *
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
),

open_at_month_end as (
    select * from {{ ref('int_opportunities_open_at_month_end') }}
),

{% if by_owner -%}
touchpoints as (
    select * from {{ ref('int_touchpoints_counted') }}
),

activities as (
    select * from {{ ref('int_activities_counted') }}
),

quotas as (
    select owner_id, month, quota_amount from {{ ref('int_quotas_converted') }}
),

owners as (
    select owner_id from opportunities where owner_id is not null
    union
    select owner_id from activities
),

grid as (
    select owners.owner_id, months.month
    from owners
    cross join months
),
{%- else -%}
grid as (
    select month from months
),
{%- endif %}

created as (
    select
        {% if by_owner %}owner_id,{% endif %}
        {{ month_of('created_at') }} as month,
        count(*) as opportunities_created
    from opportunities
    group by {% if by_owner %}owner_id, {% endif %}{{ month_of('created_at') }}
),

closed as (
    select
        {% if by_owner %}opportunities.owner_id,{% endif %}
        {{ month_of('opportunities.closed_at') }} as month,
        sum(case when opportunities.status = 'won' then 1 else 0 end) as won_count,
        sum(case when opportunities.status = 'lost' then 1 else 0 end) as lost_count,
        {{ exact_sum("case when opportunities.status = 'won' then opportunities.amount_reporting end") }}
            as won_amount,
        {{ exact_sum("case when opportunities.status = 'lost' then opportunities.amount_reporting end") }}
            as lost_amount,
        {{ exact_sum("case when opportunities.status = 'won' then opportunities.sales_cycle_days end") }}
            as won_cycle_days_sum,
        {{ exact_avg("case when opportunities.status = 'won' then opportunities.sales_cycle_days end") }}
            as avg_sales_cycle_days,
        {{ median('case when opportunities.status = \'won\' then opportunities.sales_cycle_days end') }}
            as median_sales_cycle_days
        {%- if by_owner %},
        {{ exact_avg("case when opportunities.status = 'won' then touchpoints.touchpoints_count end") }}
            as avg_touchpoints_per_won
        {%- endif %}
    from opportunities
    {%- if by_owner %}
    left join touchpoints
        on opportunities.opportunity_id = touchpoints.opportunity_id
    {%- endif %}
    where opportunities.status in ('won', 'lost')
    group by {% if by_owner %}opportunities.owner_id, {% endif %}{{ month_of('opportunities.closed_at') }}
),

open_end as (
    select
        {% if by_owner %}owner_id,{% endif %}
        month,
        count(*) as open_count_end,
        {{ exact_sum('amount_reporting') }} as open_amount_end,
        {{ exact_sum('amount_reporting * stage_probability') }} as weighted_pipeline_end
    from open_at_month_end
    group by {{ key }}
),

joined as (
    select
        {% if by_owner %}grid.owner_id,{% endif %}
        grid.month,
        coalesce(created.opportunities_created, 0) as opportunities_created,
        coalesce(closed.won_count, 0) as won_count,
        coalesce(closed.lost_count, 0) as lost_count,
        coalesce(closed.won_amount, 0) as won_amount,
        coalesce(closed.lost_amount, 0) as lost_amount,
        coalesce(closed.won_cycle_days_sum, 0) as won_cycle_days_sum,
        closed.avg_sales_cycle_days,
        closed.median_sales_cycle_days,
        coalesce(open_end.open_count_end, 0) as open_count_end,
        coalesce(open_end.open_amount_end, 0) as open_amount_end,
        coalesce(open_end.weighted_pipeline_end, 0) as weighted_pipeline_end
        {%- if by_owner %},
        coalesce(activities.activities_count, 0) as activities_count,
        closed.avg_touchpoints_per_won,
        quotas.quota_amount
        {%- endif %}
    from grid
    left join created
        on {% if by_owner %}grid.owner_id = created.owner_id and {% endif %}grid.month = created.month
    left join closed
        on {% if by_owner %}grid.owner_id = closed.owner_id and {% endif %}grid.month = closed.month
    left join open_end
        on {% if by_owner %}grid.owner_id = open_end.owner_id and {% endif %}grid.month = open_end.month
    {%- if by_owner %}
    left join activities
        on grid.owner_id = activities.owner_id and grid.month = activities.month
    left join quotas
        on grid.owner_id = quotas.owner_id and grid.month = quotas.month
    {%- endif %}
),

trailing_sums as (
    select
        joined.*,
        sum(won_count) over trailing_3_months as won_count_3m,
        sum(lost_count) over trailing_3_months as lost_count_3m,
        sum(won_amount) over trailing_3_months as won_amount_3m,
        sum(won_cycle_days_sum) over trailing_3_months as won_cycle_days_sum_3m
    from joined
    window trailing_3_months as (
        {{ partition }}order by month rows between 2 preceding and current row
    )
),

velocity_parts as (
    select
        trailing_sums.*,
        {{ safe_divide('won_count_3m', 'won_count_3m + lost_count_3m') }} as win_rate_3m,
        {{ safe_divide('won_amount_3m', 'won_count_3m') }} as avg_deal_size_3m,
        {{ safe_divide('won_cycle_days_sum_3m', 'won_count_3m') }} as avg_sales_cycle_days_3m
    from trailing_sums
)

select
    {% if by_owner %}cast(owner_id as {{ dbt.type_string() }}) as owner_id,{% endif %}
    cast(month as date) as month,
    cast(opportunities_created as {{ dbt.type_bigint() }}) as opportunities_created,
    cast(won_count as {{ dbt.type_bigint() }}) as won_count,
    cast(lost_count as {{ dbt.type_bigint() }}) as lost_count,
    cast(won_amount as {{ type_double() }}) as won_amount,
    cast(lost_amount as {{ type_double() }}) as lost_amount,
    cast({{ safe_divide('won_count', 'won_count + lost_count') }} as {{ type_double() }})
        as win_rate,
    cast({{ safe_divide('won_amount', 'won_amount + lost_amount') }} as {{ type_double() }})
        as win_rate_by_value,
    cast({{ safe_divide('won_amount', 'won_count') }} as {{ type_double() }}) as avg_deal_size,
    cast(avg_sales_cycle_days as {{ type_double() }}) as avg_sales_cycle_days,
    cast(median_sales_cycle_days as {{ type_double() }}) as median_sales_cycle_days,
    cast(open_count_end as {{ dbt.type_bigint() }}) as open_count_end,
    cast(open_amount_end as {{ type_double() }}) as open_amount_end,
    cast(weighted_pipeline_end as {{ type_double() }}) as weighted_pipeline_end,
    cast(
        open_count_end * win_rate_3m * avg_deal_size_3m / nullif(avg_sales_cycle_days_3m, 0)
        as {{ type_double() }}
    ) as pipeline_velocity_per_day
    {%- if by_owner %},
    cast(activities_count as {{ dbt.type_bigint() }}) as activities_count,
    cast(avg_touchpoints_per_won as {{ type_double() }}) as avg_touchpoints_per_won,
    cast(quota_amount as {{ type_double() }}) as quota_amount,
    cast({{ safe_divide('won_amount', 'quota_amount') }} as {{ type_double() }}) as attainment
    {%- endif %}
from velocity_parts
order by {{ key }}
{%- endmacro %}
