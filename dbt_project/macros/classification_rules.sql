{#- Rank in the active retail ladder of the tier code held by rule parameter `name` (NULL if none). -#}
{% macro active_tier_rank(name) -%}
    (
        select rule_value_tiers.tier_rank
        from {{ ref('rule_value_tiers') }} as rule_value_tiers
        where rule_value_tiers.is_active
            and rule_value_tiers.tier_code = {{ rule_parameter(name) }}
    )
{%- endmacro %}

{#- True when `value` is in the comma-separated list of rule parameter `name`; an empty list holds nothing. -#}
{% macro in_rule_list(value, name) -%}
    coalesce(list_contains(string_split({{ rule_parameter(name) }}, ','), {{ value }}), false)
{%- endmacro %}
