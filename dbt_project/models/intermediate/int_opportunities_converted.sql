-- Opportunities as of as_of: those created after it do not exist yet. Adds the canonical
-- stage of the current snapshot (used only for opportunities whose history cannot tell)
-- and the amount in the reporting currency.
--
-- Conversion: an amount already in the reporting currency (or without a currency) is kept;
-- otherwise it is multiplied by the currency's rate on the close date, else the latest
-- earlier rate. Open deals (close date expected, possibly in the future) and deals without
-- a close date use the latest rate known at as_of. A missing rate leaves amount_reporting
-- null, which the test assert_amount_reporting_has_fx_rate turns into a failure.

with opportunities as (
    select *
    from {{ ref('stg_crm__opportunities') }}
    where created_at <= {{ as_of() }}
),

stage_map as (
    select * from {{ ref('stg_crm__stage_map') }}
),

fx_rates as (
    select * from {{ ref('int_fx_rates_filled') }}
),

with_rate_day as (
    select
        opportunities.*,
        case
            when opportunities.close_date is null
                or opportunities.close_date > cast({{ as_of() }} as date)
                then cast({{ as_of() }} as date)
            else opportunities.close_date
        end as rate_day,
        (
            opportunities.currency is null
            or opportunities.currency = '{{ var("reporting_currency") | upper }}'
        ) as is_reporting_currency
    from opportunities
)

select
    with_rate_day.opportunity_id,
    with_rate_day.account_id,
    with_rate_day.owner_id,
    with_rate_day.lead_source,
    with_rate_day.amount,
    with_rate_day.currency,
    case
        when with_rate_day.is_reporting_currency then with_rate_day.amount
        else with_rate_day.amount * fx_rates.rate_to_reporting
    end as amount_reporting,
    with_rate_day.created_at,
    with_rate_day.close_date,
    with_rate_day.is_deleted,
    stage_map.stage as snapshot_stage,
    stage_map.stage_order as snapshot_stage_order,
    stage_map.stage_category as snapshot_stage_category,
    stage_map.stage_probability as snapshot_stage_probability
from with_rate_day
left join stage_map
    on with_rate_day.stage_label_normalized = stage_map.source_label
left join fx_rates
    on not with_rate_day.is_reporting_currency
    and with_rate_day.currency = fx_rates.currency
    and with_rate_day.rate_day = fx_rates.rate_day
