with source as (
    select * from {{ source('crm', 'quotas') }}
),

renamed as (
    select
        owner_id,
        month as quota_month,
        amount as quota_amount,
        upper(trim(currency)) as currency,
        _batch_id as batch_id
    from source
)

select * from renamed
