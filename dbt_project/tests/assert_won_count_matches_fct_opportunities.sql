-- Every won (non-deleted) opportunity is counted exactly once in kpi_monthly.won_count,
-- and likewise in kpi_rep_monthly for owned opportunities.
-- meta.dagster.ref: dagster-dbt shows this multi-model test as a check on kpi_monthly.
{{ config(meta={'dagster': {'ref': {'name': 'kpi_monthly'}}}) }}

with monthly as (
    select coalesce(sum(won_count), 0) as won_count
    from {{ ref('kpi_monthly') }}
),

by_rep as (
    select coalesce(sum(won_count), 0) as won_count
    from {{ ref('kpi_rep_monthly') }}
),

opportunities as (
    select
        sum(case when status = 'won' then 1 else 0 end) as won_count,
        sum(case when status = 'won' and owner_id is not null then 1 else 0 end)
            as owned_won_count
    from {{ ref('fct_opportunities') }}
    where not is_deleted
)

select
    monthly.won_count as kpi_monthly_won_count,
    by_rep.won_count as kpi_rep_monthly_won_count,
    opportunities.won_count as fct_opportunities_won_count,
    opportunities.owned_won_count as fct_opportunities_owned_won_count
from monthly
cross join by_rep
cross join opportunities
where monthly.won_count <> coalesce(opportunities.won_count, 0)
    or by_rep.won_count <> coalesce(opportunities.owned_won_count, 0)
