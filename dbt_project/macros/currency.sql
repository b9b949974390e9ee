{#-
    Currency conversion, written once. CNY is its own unit (rate 1): CBS_FX_RATE carries no CNY row.
    A missing rate yields NULL, which the not_null tests of the converted models catch.
-#}

{#- CNY per unit of `currency_expr`, given the joined rate column `rate_expr` (DECIMAL(18,6)). -#}
{% macro cny_per_unit(currency_expr, rate_expr) -%}
    case when {{ currency_expr }} = 'CNY' then cast(1 as decimal(18, 6)) else {{ rate_expr }} end
{%- endmacro %}

{#-
    An amount (DECIMAL(18,2)) in CNY, exact, as DECIMAL(38,8). The operand types are chosen for both engines:
    DECIMAL(19,2) makes DuckDB multiply in 128 bits (18 × 18 digits would overflow its 64-bit product), and
    19 + 18 + 1 = 38 digits keeps Spark's product at scale 8 (wider operands make Spark round it to 6 places).
-#}
{% macro to_cny(amount_expr, currency_expr, rate_expr) -%}
    cast(
        cast({{ amount_expr }} as decimal(19, 2))
        * cast({{ cny_per_unit(currency_expr, rate_expr) }} as decimal(18, 6))
        as decimal(38, 8)
    )
{%- endmacro %}
