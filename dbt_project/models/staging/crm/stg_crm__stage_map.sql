with source as (
    select * from {{ source('crm', 'stage_map') }}
),

renamed as (
    select
        -- raw.stage_map is written normalized; normalizing again keeps the join key exact
        -- even if a row was inserted by hand.
        {{ normalize_label('source_label') }} as source_label,
        stage,
        cast(stage_order as {{ dbt.type_int() }}) as stage_order,
        category as stage_category,
        probability as stage_probability
    from source
)

select * from renamed
