-- Quotas per owner and month in the reporting currency (docs/kpis.md,
-- kpi_pipeline_coverage): a quota in another currency is converted at the rate of the quota
-- month's first day, else the latest earlier rate; rates after as_of are unknown, so a
-- month after as_of uses the latest rate at as_of. A quota already in the reporting
-- currency (or without a currency) is kept. A missing rate leaves quota_amount null, which
-- assert_quota_has_fx_rate turns into a failure.

with quotas as (
    select * from {{ ref('stg_crm__quotas') }}
),

fx_rates as (
    select * from {{ ref('int_fx_rates_filled') }}
),

with_rate_day as (
    select
        quotas.*,
        case
            when quotas.quota_month > cast({{ as_of() }} as date) then cast({{ as_of() }} as date)
            else quotas.quota_month
        end as rate_day,
        (
            quotas.currency is null
            or quotas.currency = '{{ var("reporting_currency") | upper }}'
        ) as is_reporting_currency
    from quotas
)

select
    with_rate_day.owner_id,
    with_rate_day.quota_month as month,
    with_rate_day.quota_amount as quota_amount_original,
    with_rate_day.currency,
    case
        when with_rate_day.is_reporting_currency then with_rate_day.quota_amount
        else with_rate_day.quota_amount * fx_rates.rate_to_reporting
    end as quota_amount
from with_rate_day
left join fx_rates
    on not with_rate_day.is_reporting_currency
    and with_rate_day.currency = fx_rates.currency
    and with_rate_day.rate_day = fx_rates.rate_day
