-- Activities per owner and calendar month (UTC), up to as_of. Every activity of the rep
-- counts, linked to an opportunity or not.

with activities as (
    select owner_id, occurred_at
    from {{ ref('stg_crm__activities') }}
    where owner_id is not null
        and occurred_at <= {{ as_of() }}
)

select
    owner_id,
    {{ month_of('occurred_at') }} as month,
    count(*) as activities_count
from activities
group by owner_id, {{ month_of('occurred_at') }}
