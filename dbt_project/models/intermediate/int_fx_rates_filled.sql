-- One rate per currency and day, from the currency's first rate date to the day of as_of:
-- the rate of that day, else the latest earlier one (DATA_MODEL.md). Rates dated after
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

numbers as (
    -- Up to ~110 years of daily rates.
    {{ dbt.generate_series(40000) }}
),

days as (
    select cast({{ dbt.dateadd('day', 'numbers.generated_number - 1', 'bounds.first_day') }} as date)
        as rate_day
    from numbers
    cross join (select min(valid_from) as first_day from rate_validity) as bounds
    where bounds.first_day is not null
)

select
    rate_validity.currency,
    days.rate_day,
    rate_validity.rate_to_reporting
from rate_validity
inner join days
    on days.rate_day >= rate_validity.valid_from
    and days.rate_day < rate_validity.valid_until
