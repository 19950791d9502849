with source as (
    select * from {{ source('crm', 'accounts') }}
),

renamed as (
    select
        account_id,
        name as account_name,
        industry,
        country,
        employee_count,
        annual_revenue,
        created_at,
        updated_at,
        coalesce(is_deleted, false) as is_deleted,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
