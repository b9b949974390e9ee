{#-
    Exact division for money: DuckDB turns DECIMAL ÷ anything into DOUBLE, so we divide integers.
    The numerator is scaled to an integer count of 10^-numerator_scale units (HUGEINT), the quotient
    is rounded half away from zero ("half up" as banks use it) to `places` decimals, and the result
    is rebuilt as DECIMAL(38, places) by multiplying with a decimal literal (never dividing).
    Requires a positive denominator and a numerator with at most `numerator_scale` decimals.
-#}
{% macro exact_divide_round(numerator, denominator, places, numerator_scale=8) -%}
    {{ return(adapter.dispatch('exact_divide_round')(numerator, denominator, places, numerator_scale)) }}
{%- endmacro %}

{#-
    Spark divides DECIMALs exactly to the result type's scale, rounding half up (away from zero). With the
    numerator as DECIMAL(28 - places, s) and the denominator as DECIMAL(places + 9, 0) that scale is
    s + places + 10 at precision 38, so Spark never trims it, and one more rounding to `places` is exact:
    the true quotient lies at least 1 / (2 · 10^(s + places) · denominator) from a rounding boundary, more
    than the first rounding can move it for any denominator below 10^10 (days, customer counts).
-#}
{% macro spark__exact_divide_round(numerator, denominator, places, numerator_scale) -%}
    cast(round(
        cast({{ numerator }} as decimal({{ 28 - places }}, {{ numerator_scale }}))
        / cast({{ denominator }} as decimal({{ places + 9 }}, 0)),
        {{ places }}
    ) as decimal(38, {{ places }}))
{%- endmacro %}

{% macro default__exact_divide_round(numerator, denominator, places, numerator_scale) -%}
    {%- set units = cast_numerator_to_units(numerator, numerator_scale) -%}
    {%- set scaled_numerator = '(' ~ units ~ ' * ' ~ (10 ** places) ~ ')' -%}
    {%- set scaled_denominator = '(cast(' ~ denominator ~ ' as hugeint) * ' ~ (10 ** numerator_scale) ~ ')' -%}
    {%- set unit_literal = '1' if places == 0 else '0.' ~ ('0' * (places - 1)) ~ '1' -%}
    (cast(
        sign({{ scaled_numerator }})
        * ((2 * abs({{ scaled_numerator }}) + {{ scaled_denominator }}) // (2 * {{ scaled_denominator }}))
        as decimal(38, 0)
    ) * {{ unit_literal }})
{%- endmacro %}

{% macro cast_numerator_to_units(numerator, numerator_scale) -%}
    {%- if numerator_scale == 0 -%}
        cast({{ numerator }} as hugeint)
    {%- else -%}
        cast(cast({{ numerator }} as decimal(38, {{ numerator_scale }})) * {{ 10 ** numerator_scale }} as hugeint)
    {%- endif -%}
{%- endmacro %}

{#- Average of an exact CNY sum over a number of days, rounded half up to cents, as DECIMAL(18,2). -#}
{% macro exact_avg_round2(sum_expr, days_expr) -%}
    cast({{ exact_divide_round(sum_expr, days_expr, 2) }} as decimal(18, 2))
{%- endmacro %}

{#- Share numerator ÷ denominator (integers) rounded half up to 6 places, 0 when the denominator is 0. -#}
{% macro exact_share_round6(numerator, denominator) -%}
    cast(
        case
            when {{ denominator }} > 0 then {{ exact_divide_round(numerator, denominator, 6, numerator_scale=0) }}
            else 0
        end
        as decimal(9, 6)
    )
{%- endmacro %}
