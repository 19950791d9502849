{#
    Double precision, for every measure. dbt.type_float() renders `float`, which is single
    precision on DuckDB, so we dispatch our own.
#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'crm_pipeline')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{# x / y, or null when y is null or zero. #}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ crm_pipeline.type_double() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#
    Sums of doubles depend on the order rows are added in, which a parallel engine does
    not fix, so reruns could differ in the last bits. Measures that add up doubles (money,
    durations) sum them as decimals instead: exact, hence the same on every run
    ("same inputs + same as_of -> byte-identical marts"). Values are rounded to 1e-9 first.
#}
{% macro type_exact() -%}
    decimal(38, 9)
{%- endmacro %}

{% macro exact_sum(expression) -%}
    sum(cast({{ expression }} as {{ crm_pipeline.type_exact() }}))
{%- endmacro %}

{# The average of `expression` (nulls ignored), from an exact sum. #}
{% macro exact_avg(expression) -%}
    {{ crm_pipeline.safe_divide(crm_pipeline.exact_sum(expression), 'count(' ~ expression ~ ')') }}
{%- endmacro %}

{#
    Two money or count sums that should be equal, compared with room for what exact_sum
    rounds (1e-9 per row) and for doubles added up in another order: a relative 1e-9.
#}
{% macro sums_differ(a, b) -%}
    (abs(({{ a }}) - ({{ b }})) > 1e-9 * (1 + abs({{ a }}) + abs({{ b }})))
{%- endmacro %}
