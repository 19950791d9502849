-- A missing exchange rate is a data-quality failure, never a silent null (docs/data-model.md):
-- every opportunity with an amount has it in the reporting currency.

select
    opportunity_id,
    amount,
    currency,
    closed_at
from {{ ref('fct_opportunities') }}
where amount is not null
    and amount_reporting is null
