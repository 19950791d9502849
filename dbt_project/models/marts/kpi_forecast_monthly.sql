-- The forecast by expected close month (docs/kpis.md): the deals open at as_of (fct_forecast)
-- summed per expected close month, plus what was already won in the month: only the month
-- of as_of can have any, since no deal is expected before it. The month of as_of always
-- has a row; later months have one when a deal is expected in them.

with forecast as (
    select * from {{ ref('fct_forecast') }}
),

won as (
    select
        {{ month_of('closed_at') }} as month,
        {{ exact_sum('amount_reporting') }} as won_amount
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
        and status = 'won'
        and {{ month_of('closed_at') }} = {{ month_of(as_of()) }}
    group by {{ month_of('closed_at') }}
),

expected as (
    select
        expected_close_month,
        count(*) as open_count,
        {{ exact_sum('amount_reporting') }} as open_amount,
        {{ exact_sum('expected_amount_configured') }} as expected_amount_configured,
        {{ exact_sum('expected_amount') }} as expected_amount
    from forecast
    group by expected_close_month
),

months as (
    select expected_close_month from expected
    union
    select {{ month_of(as_of()) }} as expected_close_month
    -- Only when there is data at all (kpi_monthly has the month of as_of).
    from {{ ref('int_months_spined') }}
    where is_current_month
)

select
    cast(months.expected_close_month as date) as expected_close_month,
    cast(coalesce(expected.open_count, 0) as {{ dbt.type_bigint() }}) as open_count,
    cast(coalesce(expected.open_amount, 0) as {{ type_double() }}) as open_amount,
    cast(coalesce(expected.expected_amount_configured, 0) as {{ type_double() }})
        as expected_amount_configured,
    cast(coalesce(expected.expected_amount, 0) as {{ type_double() }}) as expected_amount,
    cast(coalesce(won.won_amount, 0) as {{ type_double() }}) as won_amount_to_date,
    cast(
        coalesce(won.won_amount, 0) + coalesce(expected.expected_amount, 0)
        as {{ type_double() }}
    ) as forecast_amount
from months
left join expected
    on months.expected_close_month = expected.expected_close_month
left join won
    on months.expected_close_month = won.month
order by expected_close_month
