with source as (
    select * from {{ source('crm', 'fx_rates') }}
),

renamed as (
    select
        upper(trim(currency)) as currency,
        rate_date,
        rate_to_reporting,
        _batch_id as batch_id
    from source
)

select * from renamed
