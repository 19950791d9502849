-- The win probability of each open stage learned at as_of (docs/kpis.md): the share won among
-- the deals closed in the lookback window (as_of included) that reached the stage, or the
-- configured probability below forecast_min_closed_deals. Definitions:
-- int_stage_win_rates_learned.

select
    cast(stage as {{ dbt.type_string() }}) as stage,
    cast(stage_order as {{ dbt.type_int() }}) as stage_order,
    cast(closed_reached_count as {{ dbt.type_bigint() }}) as closed_reached_count,
    cast(won_count as {{ dbt.type_bigint() }}) as won_count,
    cast(empirical_probability as {{ type_double() }}) as empirical_probability,
    cast(configured_probability as {{ type_double() }}) as configured_probability,
    cast(probability_used as {{ type_double() }}) as probability_used,
    cast(probability_source as {{ dbt.type_string() }}) as probability_source
from {{ ref('int_stage_win_rates_learned') }}
where is_as_of
order by stage_order
