{#-
    Every build evaluates one month: var as_of, the month's last day (the pipeline sets it; see
    flows/stages/build.py). Incremental models hold every evaluated month and replace only this one.
-#}

{#-
    The evaluated month's last day as a SQL date. Without var as_of it is NULL: a build then evaluates no
    month (unit tests and docs; the pipeline always sets as_of).
-#}
{% macro evaluation_month() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of is none -%}
        cast(null as date)
    {%- else -%}
        cast('{{ as_of }}' as date)
    {%- endif -%}
{%- endmacro %}

{#-
    Keeps the evaluated month's rows of a multi-month input; without var as_of (unit tests of one-month
    logic) every month present in the input passes.
-#}
{% macro in_evaluation_month(column) -%}
    {%- if var('as_of', none) is none -%}
        true
    {%- else -%}
        {{ column }} = {{ evaluation_month() }}
    {%- endif -%}
{%- endmacro %}

{#-
    Incremental strategy `replace_month`: delete the evaluated month's rows, insert the new ones. Unlike
    delete+insert on a unique key it also clears a month whose new build has no rows (e.g. no AML trigger
    left after a restatement).
-#}
{% macro get_incremental_replace_month_sql(arg_dict) %}
    {{ return(adapter.dispatch('replace_month_sql')(arg_dict)) }}
{% endmacro %}

{% macro default__replace_month_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} where as_of_month = {{ evaluation_month() }};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}

{#-
    True for the batch dates the evaluated month's build reads: from the day after the previous evaluated
    month (int_evaluation_months.coverage_start) to the month's end, so consecutive builds read every loaded
    day once. `build_month`: CTE holding the month's int_evaluation_months row.
-#}
{% macro in_build_coverage(column, build_month='build_month') -%}
    {{ column }} between (select {{ build_month }}.coverage_start from {{ build_month }})
        and (select {{ build_month }}.as_of_month from {{ build_month }})
{%- endmacro %}

{#-
    Pre-hook of the month-keyed models. On Spark (strategy insert_overwrite by as_of_month) it drops the
    evaluated month's partition first: insert_overwrite replaces only the partitions its new rows fill, and a
    month whose new build has no rows must still be cleared. DuckDB's replace_month does that by itself.
-#}
{% macro clear_evaluated_month() %}
    {{ return(adapter.dispatch('clear_evaluated_month')()) }}
{% endmacro %}

{% macro default__clear_evaluated_month() %}
{% endmacro %}

{% macro spark__clear_evaluated_month() %}
    {%- if is_incremental() and var('as_of', none) is not none -%}
        alter table {{ this }} drop if exists partition (as_of_month = date '{{ var('as_of') }}')
    {%- endif -%}
{% endmacro %}
