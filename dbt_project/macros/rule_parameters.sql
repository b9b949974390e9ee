{#- One value of seed rule_parameters as a scalar subquery, cast to `type`. -#}
{% macro rule_parameter(name, type='varchar') -%}
    (
        select cast(rule_parameters.value as {{ type }})
        from {{ ref('rule_parameters') }} as rule_parameters
        where rule_parameters.parameter = '{{ name }}'
    )
{%- endmacro %}
