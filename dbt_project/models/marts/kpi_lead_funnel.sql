-- Leads by cohort (month of created_at) and channel, as of as_of (docs/kpis.md). Leads
-- created after as_of do not exist yet; deleted leads are left out.
-- * qualified: qualified_at <= as_of, or converted by as_of (a converted lead was
--   qualified); its qualification moment is qualified_at when known by as_of, else
--   converted_at (a converted lead without qualified_at was qualified when converted).
-- * converted: converted_at <= as_of.
-- * won_count / won_amount: converted leads whose converted_opportunity_id is a won,
--   non-deleted opportunity (status at as_of), with that opportunity's amount_reporting.
-- Rows only for the cohort x channel combinations that have leads.

with leads as (
    select
        lead_id,
        created_at,
        coalesce(nullif(channel, ''), 'unknown') as channel,
        case
            when qualified_at <= {{ as_of() }} then qualified_at
            when converted_at <= {{ as_of() }} then converted_at
        end as qualified_by_as_of_at,
        case when converted_at <= {{ as_of() }} then converted_at end as converted_by_as_of_at,
        converted_opportunity_id
    from {{ ref('stg_crm__leads') }}
    where not is_deleted
        and created_at <= {{ as_of() }}
),

won_opportunities as (
    select opportunity_id, amount_reporting
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
        and status = 'won'
),

measured as (
    select
        {{ month_of('leads.created_at') }} as cohort_month,
        leads.channel,
        leads.qualified_by_as_of_at is not null as is_qualified,
        leads.converted_by_as_of_at is not null as is_converted,
        case
            when leads.qualified_by_as_of_at is not null
                then {{ duration_days('leads.created_at', 'leads.qualified_by_as_of_at') }}
        end as days_to_qualify,
        case
            when leads.converted_by_as_of_at is not null
                then {{ duration_days('leads.created_at', 'leads.converted_by_as_of_at') }}
        end as days_to_convert,
        leads.converted_by_as_of_at is not null
            and won_opportunities.opportunity_id is not null as is_won,
        case
            when leads.converted_by_as_of_at is not null
                then won_opportunities.amount_reporting
        end as won_amount
    from leads
    left join won_opportunities
        on leads.converted_opportunity_id = won_opportunities.opportunity_id
),

grouped as (
    select
        cohort_month,
        channel,
        count(*) as leads_created,
        sum(case when is_qualified then 1 else 0 end) as qualified_count,
        sum(case when is_converted then 1 else 0 end) as converted_count,
        {{ exact_avg('days_to_qualify') }} as avg_days_to_qualify,
        {{ exact_avg('days_to_convert') }} as avg_days_to_convert,
        sum(case when is_won then 1 else 0 end) as won_count,
        {{ exact_sum('won_amount') }} as won_amount
    from measured
    group by cohort_month, channel
)

select
    cast(cohort_month as date) as cohort_month,
    cast(channel as {{ dbt.type_string() }}) as channel,
    cast(leads_created as {{ dbt.type_bigint() }}) as leads_created,
    cast(qualified_count as {{ dbt.type_bigint() }}) as qualified_count,
    cast(converted_count as {{ dbt.type_bigint() }}) as converted_count,
    cast({{ safe_divide('qualified_count', 'leads_created') }} as {{ type_double() }})
        as qualification_rate,
    cast({{ safe_divide('converted_count', 'leads_created') }} as {{ type_double() }})
        as conversion_rate,
    cast(avg_days_to_qualify as {{ type_double() }}) as avg_days_to_qualify,
    cast(avg_days_to_convert as {{ type_double() }}) as avg_days_to_convert,
    cast(won_count as {{ dbt.type_bigint() }}) as won_count,
    cast(coalesce(won_amount, 0) as {{ type_double() }}) as won_amount
from grouped
order by cohort_month, channel
