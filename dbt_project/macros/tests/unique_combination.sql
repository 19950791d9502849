{#
    Generic test: the combination of `columns` identifies a row (dbt_utils'
    unique_combination_of_columns, which we cannot install from the hub).
#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_count
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
