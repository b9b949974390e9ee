{#-
    Versions of a snapshot table (customers, accounts, loans) valid at the evaluated month's end: the state
    stored for the previous evaluated month folded with every change since, so a build reads one month of
    change history, not all of it (DECISIONLOG D1, R1). Without a stored previous state (the first month, or
    a full refresh) every change up to the month's end is read.

    changes: CTE with valid_from, is_deleted and `columns`; key: its key column; build_month: CTE of the
    evaluated month's int_evaluation_months row. Call inside an incremental model that stores `columns`.
-#}
{% macro month_end_state(changes, key, columns, build_month='build_month') %}
    select {{ columns | join(', ') }}
    from (
    select {{ columns | join(', ') }}, is_deleted,
        row_number() over (partition by {{ key }} order by valid_from desc) as newest_first
    from (
        {%- if is_incremental() %}
        select {{ columns | join(', ') }}, false as is_deleted
        from {{ this }}
        where as_of_month = (select {{ build_month }}.previous_as_of_month from {{ build_month }})
        union all
        {%- endif %}
        select {{ columns | join(', ') }}, is_deleted
        from {{ changes }}
        where valid_from <= (select {{ build_month }}.as_of_month from {{ build_month }})
        {%- if is_incremental() %}
            and valid_from > coalesce(
                (select {{ build_month }}.previous_as_of_month from {{ build_month }}), date '0001-01-01'
            )
        {%- endif %}
    ) as versions
    ) as numbered
    where newest_first = 1 and not is_deleted
{% endmacro %}
