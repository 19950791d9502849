with source as (
    select * from {{ source('crm', 'activities') }}
),

renamed as (
    select
        activity_id,
        lower(trim(activity_type)) as activity_type,
        occurred_at,
        owner_id,
        opportunity_id,
        lead_id,
        contact_id,
        account_id,
        subject,
        is_completed,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
