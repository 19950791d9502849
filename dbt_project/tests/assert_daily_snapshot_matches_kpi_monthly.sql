-- On the last day of each month (the day of as_of for the month of as_of) the daily
-- snapshot's sums over stages equal kpi_monthly's end-of-month columns.
-- meta.dagster.ref: dagster-dbt shows this multi-model test as a check on the snapshot.
{{ config(meta={'dagster': {'ref': {'name': 'fct_pipeline_daily_snapshot'}}}) }}

with snapshot_by_day as (
    select
        snapshot_date,
        sum(open_count) as open_count,
        sum(open_amount) as open_amount,
        sum(weighted_amount) as weighted_amount
    from {{ ref('fct_pipeline_daily_snapshot') }}
    group by snapshot_date
),

month_last_days as (
    select
        month,
        case
            when month = {{ month_of(as_of()) }} then cast({{ as_of() }} as date)
            else cast({{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, 'month')) }} as date)
        end as last_day,
        open_count_end,
        open_amount_end,
        weighted_pipeline_end
    from {{ ref('kpi_monthly') }}
)

select
    month_last_days.*,
    snapshot_by_day.open_count,
    snapshot_by_day.open_amount,
    snapshot_by_day.weighted_amount
from month_last_days
left join snapshot_by_day
    on month_last_days.last_day = snapshot_by_day.snapshot_date
-- Months before the first opportunity (activities only) have no snapshot day and nothing open.
where coalesce(snapshot_by_day.open_count, 0) <> month_last_days.open_count_end
    or {{ sums_differ('coalesce(snapshot_by_day.open_amount, 0)', 'month_last_days.open_amount_end') }}
    or {{ sums_differ(
        'coalesce(snapshot_by_day.weighted_amount, 0)', 'month_last_days.weighted_pipeline_end'
    ) }}
