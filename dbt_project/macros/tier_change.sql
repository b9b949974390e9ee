{#- NEW without a previous tier, else UP / SAME / DOWN by tier rank. -#}
{% macro tier_change(previous_rank, current_rank) -%}
    case
        when {{ previous_rank }} is null then 'NEW'
        when {{ current_rank }} > {{ previous_rank }} then 'UP'
        when {{ current_rank }} = {{ previous_rank }} then 'SAME'
        else 'DOWN'
    end
{%- endmacro %}
