-- What each forecasting method would have predicted at each past month end, with only what
-- was known then, against what those deals actually brought (docs/kpis.md). For every month of
-- kpi_monthly before the month of as_of, at t = its end:
-- * the deals open at t under the stage held at t (int_opportunities_open_at_month_end:
--   a stage entered after t is not seen);
-- * predicted_won_amount = sum of amount x probability of the held stage: `configured`
--   uses the configured probabilities; `empirical` the ones learned before t
--   (int_stage_win_rates_learned: closes after t are not seen), with the configured
--   fallback, and the configured probability for a held stage that is not open;
-- * actual_won_amount: the amount of those same deals whose status at as_of is won;
--   still_open_amount: of those still open at as_of.
-- error_amount = predicted - actual; abs_pct_error = |error| / actual, null when actual is 0.

with months as (
    select month, month_end_at
    from {{ ref('int_months_spined') }}
    where not is_current_month
),

methods as (
    select 'configured' as method
    union all
    select 'empirical' as method
),

open_at_t as (
    select open_at_month_end.*, months.month_end_at
    from {{ ref('int_opportunities_open_at_month_end') }} as open_at_month_end
    inner join months
        on open_at_month_end.month = months.month
),

learned as (
    select *
    from {{ ref('int_stage_win_rates_learned') }}
    where not is_as_of
),

outcomes as (
    select opportunity_id, status
    from {{ ref('int_opportunities_closed') }}
),

predicted as (
    select
        open_at_t.month,
        methods.method,
        open_at_t.amount_reporting,
        case
            when methods.method = 'empirical'
                then coalesce(learned.probability_used, open_at_t.stage_probability)
            else open_at_t.stage_probability
        end as probability,
        outcomes.status
    from open_at_t
    cross join methods
    left join learned
        on open_at_t.month_end_at = learned.learned_at
        and open_at_t.stage = learned.stage
    inner join outcomes
        on open_at_t.opportunity_id = outcomes.opportunity_id
),

summed as (
    select
        month,
        method,
        count(*) as open_count,
        {{ exact_sum('amount_reporting') }} as open_amount,
        {{ exact_sum('amount_reporting * probability') }} as predicted_won_amount,
        {{ exact_sum("case when status = 'won' then amount_reporting end") }} as actual_won_amount,
        {{ exact_sum("case when status = 'open' then amount_reporting end") }} as still_open_amount
    from predicted
    group by month, method
),

grid as (
    select
        months.month,
        methods.method,
        coalesce(summed.open_count, 0) as open_count,
        coalesce(summed.open_amount, 0) as open_amount,
        coalesce(summed.predicted_won_amount, 0) as predicted_won_amount,
        coalesce(summed.actual_won_amount, 0) as actual_won_amount,
        coalesce(summed.still_open_amount, 0) as still_open_amount
    from months
    cross join methods
    left join summed
        on months.month = summed.month
        and methods.method = summed.method
)

select
    cast(month as date) as month,
    cast(method as {{ dbt.type_string() }}) as method,
    cast(open_count as {{ dbt.type_bigint() }}) as open_count,
    cast(open_amount as {{ type_double() }}) as open_amount,
    cast(predicted_won_amount as {{ type_double() }}) as predicted_won_amount,
    cast(actual_won_amount as {{ type_double() }}) as actual_won_amount,
    cast(still_open_amount as {{ type_double() }}) as still_open_amount,
    cast(predicted_won_amount - actual_won_amount as {{ type_double() }}) as error_amount,
    cast(
        {{ safe_divide('abs(predicted_won_amount - actual_won_amount)', 'actual_won_amount') }}
        as {{ type_double() }}
    ) as abs_pct_error
from grid
order by month, method
