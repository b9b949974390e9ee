{#
    CBS_CUSTOMER, CBS_ACCOUNT and CBS_LOAN are full daily snapshots: a month's state is the latest batch
    on or before the month's last day (DECISIONLOG D1). One row per evaluated month: as_of_month,
    snapshot_date. `snapshots` and `months` are CTE names in the calling model.
#}
{% macro month_end_snapshot_dates(snapshots, months) %}
    select
        {{ months }}.as_of_month,
        max(snapshot_dates.snapshot_date) as snapshot_date
    from {{ months }}
    inner join (select distinct snapshot_date from {{ snapshots }}) as snapshot_dates
        on snapshot_dates.snapshot_date <= {{ months }}.as_of_month
    group by {{ months }}.as_of_month
{% endmacro %}
