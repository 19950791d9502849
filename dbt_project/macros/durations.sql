{#
    Durations are in days as double precision: (later - earlier) in seconds / 86400
    (docs/kpis.md). Second boundaries are counted, so durations of back-to-back intervals add
    up exactly to the duration of their union.
#}
{% macro duration_days(earlier, later) -%}
    {{ return(adapter.dispatch('duration_days', 'crm_pipeline')(earlier, later)) }}
{%- endmacro %}

{% macro default__duration_days(earlier, later) -%}
    ({{ dbt.datediff(earlier, later, 'second') }} / 86400.0)
{%- endmacro %}

{#
    Spark reads 86400.0 as a decimal and divides decimals to a fixed scale (16.4166667);
    in double precision it computes what DuckDB does.
#}
{% macro spark__duration_days(earlier, later) -%}
    (cast({{ dbt.datediff(earlier, later, 'second') }} as double) / 86400)
{%- endmacro %}

{# The calendar month (UTC) of a timestamp, as the DATE of its first day. #}
{% macro month_of(timestamp_expr) -%}
    cast({{ dbt.date_trunc('month', timestamp_expr) }} as date)
{%- endmacro %}

{# The first instant of the month after `month_expr` (a DATE first-of-month). #}
{% macro next_month_start(month_expr) -%}
    cast({{ dbt.dateadd('month', 1, month_expr) }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#
    The outcome a stage category stands for (docs/kpis.md, "status"): won and post-sale stages
    are won, lost stages lost, open stages open.
#}
{% macro outcome_of(stage_category) -%}
    case {{ stage_category }}
        when 'lost' then 'lost'
        when 'won' then 'won'
        when 'post_sale' then 'won'
        else 'open'
    end
{%- endmacro %}
