{#- Rank in the active retail ladder of the tier code held by rule `name` of `section` (NULL if none). -#}
{% macro active_tier_rank(section, name) -%}
    (
        select rule_value_tiers.tier_rank
        from {{ ref('rule_value_tiers') }} as rule_value_tiers
        where rule_value_tiers.is_active
            and rule_value_tiers.tier_code = {{ rule_value(section, name) }}
    )
{%- endmacro %}

{#- True when `value` is in list rule `name` of `section`; an empty list holds nothing. -#}
{% macro in_rule_list(value, section, name) -%}
    coalesce({{ list_has(rule_list(section, name), value) }}, false)
{%- endmacro %}
