{#- A single-row seed (a rules file section) holds exactly one row: none would read every rule as NULL. -#}
{% test exactly_one_row(model) %}

    select count(*) as row_count
    from {{ model }}
    having count(*) <> 1

{% endtest %}
