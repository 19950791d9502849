-- kpi_forecast_monthly adds up fct_forecast exactly: the same open deals, amounts and
-- expected amounts in total, and per expected close month.
-- meta.dagster.ref: dagster-dbt shows this multi-model test as a check on kpi_forecast_monthly.
{{ config(meta={'dagster': {'ref': {'name': 'kpi_forecast_monthly'}}}) }}

with deals as (
    select
        expected_close_month,
        count(*) as open_count,
        coalesce(sum(amount_reporting), 0) as open_amount,
        coalesce(sum(expected_amount_configured), 0) as expected_amount_configured,
        coalesce(sum(expected_amount), 0) as expected_amount
    from {{ ref('fct_forecast') }}
    group by expected_close_month
),

monthly as (
    select * from {{ ref('kpi_forecast_monthly') }}
)

select
    coalesce(deals.expected_close_month, monthly.expected_close_month) as expected_close_month,
    deals.open_count as forecast_open_count,
    monthly.open_count as monthly_open_count
from deals
full outer join monthly
    on deals.expected_close_month = monthly.expected_close_month
where coalesce(deals.open_count, 0) <> coalesce(monthly.open_count, 0)
    or {{ sums_differ('coalesce(deals.open_amount, 0)', 'coalesce(monthly.open_amount, 0)') }}
    or {{ sums_differ(
        'coalesce(deals.expected_amount_configured, 0)',
        'coalesce(monthly.expected_amount_configured, 0)'
    ) }}
    or {{ sums_differ('coalesce(deals.expected_amount, 0)', 'coalesce(monthly.expected_amount, 0)') }}
    or {{ sums_differ('monthly.forecast_amount', 'monthly.won_amount_to_date + monthly.expected_amount') }}
