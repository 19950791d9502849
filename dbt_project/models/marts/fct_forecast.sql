-- One row per opportunity open at as_of (status open, not deleted), under the stage it
-- holds at as_of, with what it is expected to bring and when (docs/kpis.md):
-- * expected_close_month: the month of close_date, never before the month of as_of (an
--   overdue or missing close date counts in the month of as_of);
-- * is_overdue: close_date before the date of as_of (null without a close date);
-- * expected_amount_configured = amount x the configured probability of the stage;
--   expected_amount = amount x the probability used (learned at as_of, or the configured
--   one below forecast_min_closed_deals: kpi_stage_win_probability).

with opportunities as (
    select *
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
        and status = 'open'
),

learned as (
    select *
    from {{ ref('int_stage_win_rates_learned') }}
    where is_as_of
),

forecast as (
    select
        opportunities.opportunity_id,
        opportunities.owner_id,
        opportunities.current_stage as stage,
        opportunities.current_stage_order as stage_order,
        opportunities.amount_reporting,
        opportunities.close_date,
        case
            when opportunities.close_date is null
                or opportunities.close_date < {{ month_of(as_of()) }}
                then {{ month_of(as_of()) }}
            else {{ month_of('opportunities.close_date') }}
        end as expected_close_month,
        opportunities.close_date < cast({{ as_of() }} as date) as is_overdue,
        opportunities.current_stage_probability as probability_configured,
        coalesce(learned.probability_used, opportunities.current_stage_probability)
            as probability_used,
        case
            when opportunities.current_stage_probability is null then null
            else coalesce(learned.probability_source, 'configured')
        end as probability_source
    from opportunities
    left join learned
        on opportunities.current_stage = learned.stage
)

select
    cast(opportunity_id as {{ dbt.type_string() }}) as opportunity_id,
    cast(owner_id as {{ dbt.type_string() }}) as owner_id,
    cast(stage as {{ dbt.type_string() }}) as stage,
    cast(stage_order as {{ dbt.type_int() }}) as stage_order,
    cast(amount_reporting as {{ type_double() }}) as amount_reporting,
    cast(close_date as date) as close_date,
    cast(expected_close_month as date) as expected_close_month,
    cast(is_overdue as {{ dbt.type_boolean() }}) as is_overdue,
    cast(probability_configured as {{ type_double() }}) as probability_configured,
    cast(probability_used as {{ type_double() }}) as probability_used,
    cast(probability_source as {{ dbt.type_string() }}) as probability_source,
    cast(amount_reporting * probability_configured as {{ type_double() }})
        as expected_amount_configured,
    cast(amount_reporting * probability_used as {{ type_double() }}) as expected_amount
from forecast
order by opportunity_id
