-- One rate per currency and day, from the currency's first rate date to the day of as_of:
-- the rate of that day, else the latest earlier one (docs/data-model.md). Rates dated after
-- as_of are ignored like every other event. Turning the "latest earlier rate" lookup into
-- an equality join keeps converting 1M opportunities a plain hash join.

with rates as (
    select *
    from {{ ref('stg_crm__fx_rates') }}
    where rate_date <= cast({{ as_of() }} as date)
        and rate_to_reporting is not null
),

rate_validity as (
    select
        currency,
        rate_date as valid_from,
        coalesce(
            lead(rate_date) over (partition by currency order by rate_date),
            cast({{ dbt.dateadd('day', 1, 'cast(' ~ as_of() ~ ' as date)') }} as date)
        ) as valid_until,
        rate_to_reporting
    from rates
),

days as (
    -- Up to ~110 years of daily rates.
    {{ day_spine(
        start_day='(select min(valid_from) from rate_validity)',
        end_day='cast(' ~ as_of() ~ ' as date)'
    ) }}
)

select
    rate_validity.currency,
    days.day as rate_day,
    rate_validity.rate_to_reporting
from rate_validity
inner join days
    on days.day >= rate_validity.valid_from
    and days.day < rate_validity.valid_until
