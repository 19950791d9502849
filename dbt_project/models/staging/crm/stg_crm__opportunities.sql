with source as (
    select * from {{ source('crm', 'opportunities') }}
),

renamed as (
    select
        opportunity_id,
        account_id,
        owner_id,
        name as opportunity_name,
        lead_source,
        stage as stage_label,
        {{ normalize_label('stage') }} as stage_label_normalized,
        amount,
        upper(trim(currency)) as currency,
        probability,
        close_date,
        is_closed,
        is_won,
        lost_reason,
        created_at,
        updated_at,
        -- Soft deletes stay visible here (and in fct_opportunities, flagged); KPIs skip them.
        coalesce(is_deleted, false) as is_deleted,
        _source as source_system,
        _batch_id as batch_id
    from source
)

select * from renamed
