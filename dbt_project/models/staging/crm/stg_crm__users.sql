with source as (
    select * from {{ source('crm', 'users') }}
),

renamed as (
    select
        user_id,
        name as user_name,
        email,
        team,
        manager_id,
        region,
        is_active,
        created_at,
        updated_at,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
