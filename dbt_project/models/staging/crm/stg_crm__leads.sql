with source as (
    select * from {{ source('crm', 'leads') }}
),

renamed as (
    select
        lead_id,
        created_at,
        email,
        company,
        lower(trim(channel)) as channel,
        -- Compared case-insensitively everywhere: the gate accepts any case.
        lower(trim(status)) as lead_status,
        score,
        owner_id,
        qualified_at,
        converted_at,
        converted_opportunity_id,
        updated_at,
        coalesce(is_deleted, false) as is_deleted,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
