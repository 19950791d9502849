with source as (
    select * from {{ source('crm', 'contacts') }}
),

renamed as (
    select
        contact_id,
        account_id,
        first_name,
        last_name,
        email,
        phone,
        title,
        created_at,
        updated_at,
        coalesce(is_deleted, false) as is_deleted,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
