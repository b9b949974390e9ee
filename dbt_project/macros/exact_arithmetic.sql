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
    The same integer arithmetic on Spark, whose DECIMAL(38, 0) stands in for HUGEINT. Spark's own DECIMAL
    division trims its scale when the operands are wide (a large amount scaled by 10^6 lost its USD
    equivalent), so it is not used. The numerator's units come from its plain text (multiplying a
    DECIMAL(38, s) by 10^s would make Spark drop decimals to stay within 38 digits). Spark's `div` is exact
    but returns a 64-bit integer and wraps silently beyond it, so the remainder is checked: a quotient
    out of range raises instead of publishing a wrong amount.
-#}
{% macro spark__exact_divide_round(numerator, denominator, places, numerator_scale) -%}
    {%- if numerator_scale == 0 -%}
        {%- set units = 'cast(' ~ numerator ~ ' as decimal(38, 0))' -%}
    {%- else -%}
        {%- set units = "cast(replace(cast(cast(" ~ numerator ~ " as decimal(38, " ~ numerator_scale
            ~ ")) as string), '.', '') as decimal(38, 0))" -%}
    {%- endif -%}
    {%- set scaled_denominator = '(cast(' ~ denominator ~ ' as decimal(38, 0)) * ' ~ (10 ** numerator_scale) ~ ')' -%}
    {%- set dividend = '(2 * abs(' ~ units ~ ' * ' ~ (10 ** places) ~ ') + ' ~ scaled_denominator ~ ')' -%}
    {%- set divisor = '(2 * ' ~ scaled_denominator ~ ')' -%}
    {%- set quotient = '(' ~ dividend ~ ' div ' ~ divisor ~ ')' -%}
    {%- set remainder = '(' ~ dividend ~ ' - ' ~ quotient ~ ' * ' ~ divisor ~ ')' -%}
    {%- set unit_literal = '1' if places == 0 else '0.' ~ ('0' * (places - 1)) ~ '1' -%}
    cast(
        case
            when {{ remainder }} >= 0 and {{ remainder }} < {{ divisor }}
                then cast((case when {{ units }} < 0 then -1 else 1 end) * {{ quotient }} as decimal(20, 0))
                    * {{ unit_literal }}
            else raise_error('exact_divide_round: quotient beyond 64 bits')
        end
        as decimal(38, {{ places }})
    )
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
