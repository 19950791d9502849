with source as (
    select * from {{ source('crm', 'stage_changes') }}
),

renamed as (
    select
        opportunity_id,
        stage as stage_label,
        {{ normalize_label('stage') }} as stage_label_normalized,
        changed_at,
        change_id,
        amount,
        changed_by as changed_by_user_id,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
