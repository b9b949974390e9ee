{#-
    A single-row seed (a section of the rules file) holds exactly one row and no NULL in `column_names`:
    no row, or an empty column, would read every rule of the section as NULL. One test per seed, not one
    per column: it runs in every build.
-#}
{% test exactly_one_complete_row(model, column_names) %}

    select
        count(*) as row_count,
        count(*) filter (where {{ column_names | join(' is null or ') }} is null) as incomplete_rows
    from {{ model }}
    having count(*) <> 1 or count(*) filter (where {{ column_names | join(' is null or ') }} is null) > 0

{% endtest %}
