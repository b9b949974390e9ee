{#-
    dbt-spark 1.11 loads a seed's rows with query bindings; its `session` method formats a missing value
    as the text 'None', so an empty rule cell (e.g. the LOW KYC level's aml_trigger) became 'None' instead
    of NULL. This override writes each value as a typed literal, NULL for an empty cell, on every method.
-#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set types = [] -%}
    {%- for col_name in agate_table.column_names -%}
        {%- do types.append(column_override.get(col_name, adapter.convert_type(agate_table, loop.index0))) -%}
    {%- endfor -%}
    {%- set rows = [] -%}
    {%- for row in agate_table.rows -%}
        {%- set values = [] -%}
        {%- for value in row -%}
            {%- if value is none -%}
                {%- do values.append('cast(null as ' ~ types[loop.index0] ~ ')') -%}
            {%- else -%}
                {%- set text = (value | string).replace('\\', '\\\\').replace("'", "\\'") -%}
                {%- do values.append("cast('" ~ text ~ "' as " ~ types[loop.index0] ~ ")") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do rows.append('(' ~ values | join(', ') ~ ')') -%}
    {%- endfor -%}
    {%- set sql -%}
        insert into {{ this.render() }} values {{ rows | join(', ') }}
    {%- endset -%}
    {%- if rows -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
    {%- endif -%}
    {{ return(sql) }}
{% endmacro %}
