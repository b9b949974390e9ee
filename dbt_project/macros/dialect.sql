{#-
    SQL that differs between the engines (TIERING_ENGINE: DuckDB, default, or Spark). Every model is written
    once; where DuckDB and Spark SQL spell a thing differently the model calls one of these macros, and
    adapter.dispatch picks the `duckdb__` / `spark__` body (`default__` when both agree).
-#}

{#- True when list `list_expr` holds `value`. -#}
{% macro list_has(list_expr, value) -%}
    {{ return(adapter.dispatch('list_has')(list_expr, value)) }}
{%- endmacro %}

{% macro default__list_has(list_expr, value) -%}
    list_contains({{ list_expr }}, {{ value }})
{%- endmacro %}

{% macro spark__list_has(list_expr, value) -%}
    array_contains({{ list_expr }}, {{ value }})
{%- endmacro %}

{#- The values of list `list_expr` joined by `separator`. -#}
{% macro list_joined(list_expr, separator) -%}
    {{ return(adapter.dispatch('list_joined')(list_expr, separator)) }}
{%- endmacro %}

{% macro default__list_joined(list_expr, separator) -%}
    array_to_string({{ list_expr }}, '{{ separator }}')
{%- endmacro %}

{% macro spark__list_joined(list_expr, separator) -%}
    array_join({{ list_expr }}, '{{ separator }}')
{%- endmacro %}

{#- Text `text_expr` split at every `separator` (a plain character) into a list. -#}
{% macro split_to_list(text_expr, separator) -%}
    {{ return(adapter.dispatch('split_to_list')(text_expr, separator)) }}
{%- endmacro %}

{% macro default__split_to_list(text_expr, separator) -%}
    string_split({{ text_expr }}, '{{ separator }}')
{%- endmacro %}

{% macro spark__split_to_list(text_expr, separator) -%}
    {#- Spark's split takes a regular expression: quote the separator. -#}
    split({{ text_expr }}, '\\Q{{ separator }}\\E')
{%- endmacro %}

{#-
    A list rule as a list. The rule seeds state lists as `[A, B]`: DuckDB loads that into the seed's
    varchar[] column; Spark's seed loader has no list type, so the seed column is text, parsed here.
-#}
{% macro rule_list(section, name) -%}
    {{ return(adapter.dispatch('rule_list')(section, name)) }}
{%- endmacro %}

{% macro default__rule_list(section, name) -%}
    {{ rule_value(section, name) }}
{%- endmacro %}

{% macro spark__rule_list(section, name) -%}
    (
        select
            case
                when trim(rule_{{ section }}.{{ name }}) in ('[]', '')
                    then cast(array() as array<string>)
                else split(regexp_replace(trim(rule_{{ section }}.{{ name }}), '^\\[|\\]$', ''), ',\\s*')
            end
        from {{ ref('rule_' ~ section) }} as rule_{{ section }}
    )
{%- endmacro %}

{#- `expression` of each row joined by `separator`, in the order of `order_by`. -#}
{% macro ordered_text_agg(expression, separator, order_by) -%}
    {{ return(adapter.dispatch('ordered_text_agg')(expression, separator, order_by)) }}
{%- endmacro %}

{% macro default__ordered_text_agg(expression, separator, order_by) -%}
    string_agg({{ expression }}, '{{ separator }}' order by {{ order_by }})
{%- endmacro %}

{% macro spark__ordered_text_agg(expression, separator, order_by) -%}
    string_agg({{ expression }}, '{{ separator }}') within group (order by {{ order_by }})
{%- endmacro %}

{#- An interval of `months_expr` months (an integer expression). -#}
{% macro months_interval(months_expr) -%}
    {{ return(adapter.dispatch('months_interval')(months_expr)) }}
{%- endmacro %}

{% macro default__months_interval(months_expr) -%}
    to_months({{ months_expr }})
{%- endmacro %}

{% macro spark__months_interval(months_expr) -%}
    make_ym_interval(0, {{ months_expr }})
{%- endmacro %}

{#- Every day from `first_day` to `last_day` (dates), one row each, as column `alias`. -#}
{% macro days_between(first_day, last_day, alias) -%}
    {{ return(adapter.dispatch('days_between')(first_day, last_day, alias)) }}
{%- endmacro %}

{% macro default__days_between(first_day, last_day, alias) -%}
    cast(unnest(generate_series({{ first_day }}, {{ last_day }}, interval 1 day)) as date) as {{ alias }}
{%- endmacro %}

{% macro spark__days_between(first_day, last_day, alias) -%}
    explode(sequence({{ first_day }}, {{ last_day }}, interval 1 day)) as {{ alias }}
{%- endmacro %}

{#- A date as text in the pattern `yyyy-MM` or `yyyy-MM-dd` (Java letters; DuckDB's strftime is mapped). -#}
{% macro date_text(date_expr, pattern) -%}
    {{ return(adapter.dispatch('date_text')(date_expr, pattern)) }}
{%- endmacro %}

{% macro default__date_text(date_expr, pattern) -%}
    strftime({{ date_expr }}, '{{ pattern | replace("yyyy", "%Y") | replace("MM", "%m") | replace("dd", "%d") }}')
{%- endmacro %}

{% macro spark__date_text(date_expr, pattern) -%}
    date_format({{ date_expr }}, '{{ pattern }}')
{%- endmacro %}

{#- Every column of `relation_alias` but `columns` (a list of names). -#}
{% macro star_except(relation_alias, columns) -%}
    {{ return(adapter.dispatch('star_except')(relation_alias, columns)) }}
{%- endmacro %}

{% macro default__star_except(relation_alias, columns) -%}
    {{ relation_alias }}.* exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__star_except(relation_alias, columns) -%}
    {{ relation_alias }}.* except ({{ columns | join(', ') }})
{%- endmacro %}

{#- Days from date `earlier` to date `later` (an integer; DuckDB subtracts dates to days, Spark to an interval). -#}
{% macro days_from(earlier, later) -%}
    {{ return(adapter.dispatch('days_from')(earlier, later)) }}
{%- endmacro %}

{% macro default__days_from(earlier, later) -%}
    ({{ later }} - {{ earlier }})
{%- endmacro %}

{% macro spark__days_from(earlier, later) -%}
    datediff({{ later }}, {{ earlier }})
{%- endmacro %}

{#- Integer division of two non-negative integers, rounded down. -#}
{% macro int_div(dividend, divisor) -%}
    {{ return(adapter.dispatch('int_div')(dividend, divisor)) }}
{%- endmacro %}

{% macro default__int_div(dividend, divisor) -%}
    ({{ dividend }}) // ({{ divisor }})
{%- endmacro %}

{% macro spark__int_div(dividend, divisor) -%}
    ({{ dividend }}) div ({{ divisor }})
{%- endmacro %}

{#-
    The catalog's columns of schema `schema_name` as a relation (table_schema, table_name, column_name).
    Spark SQL has no information_schema: there the columns are read from the catalog when the SQL is
    compiled (the tables exist by then: tests run after their models) and inlined as VALUES.
-#}
{% macro catalog_columns(schema_name) -%}
    {{ return(adapter.dispatch('catalog_columns')(schema_name)) }}
{%- endmacro %}

{% macro default__catalog_columns(schema_name) -%}
    (
        select table_schema, table_name, column_name
        from information_schema.columns
        where table_schema = '{{ schema_name }}'
    )
{%- endmacro %}

{% macro spark__catalog_columns(schema_name) -%}
    {%- set rows = [] -%}
    {%- if execute -%}
        {%- for table in run_query('show tables in ' ~ schema_name) if not table['isTemporary'] -%}
            {%- set relation = api.Relation.create(schema=schema_name, identifier=table['tableName']) -%}
            {%- for column in adapter.get_columns_in_relation(relation) -%}
                {%- do rows.append("('" ~ schema_name ~ "', '" ~ table['tableName'] ~ "', '" ~ column.name ~ "')") -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if rows -%}
        (select * from values {{ rows | join(', ') }} as catalog_columns (table_schema, table_name, column_name))
    {%- else -%}
        (
            select
                cast(null as string) as table_schema,
                cast(null as string) as table_name,
                cast(null as string) as column_name
            where false
        )
    {%- endif -%}
{%- endmacro %}

{#- `as materialized` for a CTE read several times: DuckDB computes it once; Spark plans it as it likes. -#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
    materialized
{%- endmacro %}

{% macro spark__materialized_cte() -%}
{%- endmacro %}
