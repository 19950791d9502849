-- A missing exchange rate is a data-quality failure, never a silent null: every quota has
-- its amount in the reporting currency.

select owner_id, month, quota_amount_original, currency
from {{ ref('int_quotas_converted') }}
where quota_amount_original is not null
    and quota_amount is null
