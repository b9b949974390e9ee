{#-
    Mask personal data: keep `keep_first` leading and `keep_last` trailing characters, replace each
    other character with mask_char. A value too short to hide anything is masked whole; NULL stays NULL.
-#}
{% macro mask_text(value, keep_first, keep_last, mask_char) -%}
    case
        when {{ value }} is null then null
        when length({{ value }}) <= {{ keep_first }} + {{ keep_last }}
            then repeat({{ mask_char }}, length({{ value }}))
        else
            left({{ value }}, {{ keep_first }})
            || repeat({{ mask_char }}, length({{ value }}) - {{ keep_first }} - {{ keep_last }})
            || right({{ value }}, {{ keep_last }})
    end
{%- endmacro %}

{#- Mask `column` by the rules of `field` (cust_name, cert_no, mobile) read from seed rule_masking. -#}
{% macro mask_personal_data(column, field) -%}
    {{ mask_text(
        column,
        rule_value('masking', field ~ '_keep_first'),
        rule_value('masking', field ~ '_keep_last'),
        rule_value('masking', 'mask_char')
    ) }}
{%- endmacro %}
