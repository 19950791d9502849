-- Every month of the waterfall balances exactly: opening + created - won - lost = closing,
-- and each month opens with what the previous one closed with.

with waterfall as (
    select
        *,
        lag(closing_count) over (order by month) as previous_closing_count,
        lag(closing_amount) over (order by month) as previous_closing_amount
    from {{ ref('kpi_pipeline_waterfall') }}
)

select *
from waterfall
where opening_count + created_count - won_count - lost_count <> closing_count
    or {{ sums_differ('opening_amount + created_amount - won_amount - lost_amount', 'closing_amount') }}
    or opening_count <> coalesce(previous_closing_count, 0)
    or {{ sums_differ('opening_amount', 'coalesce(previous_closing_amount, 0)') }}
