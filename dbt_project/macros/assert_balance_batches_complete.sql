{#-
    on-run-start guard: with var as_of set, every day of the as_of month, and of its three-month window
    from the first loaded balance date on, needs a LOADED CBS_BALANCE batch in audit.batch_log.
    Otherwise the run fails before anything is built, naming the missing dates.
-#}
{% macro assert_balance_batches_complete() %}
    {%- set as_of = var('as_of', none) -%}
    {%- if execute and as_of -%}
        {%- set as_of_text = as_of | string -%}
        {%- set as_of_date = parse_as_of_month_end(as_of_text) -%}
        {%- set missing = run_query(missing_balance_dates_sql(as_of_date)) -%}
        {%- if missing.rows | length > 0 -%}
            {%- set by_month = {} -%}
            {%- for row in missing.rows -%}
                {%- do by_month.setdefault(row['missing_month'], []).append(row['missing_date']) -%}
            {%- endfor -%}
            {%- set parts = [] -%}
            {%- for month, dates in by_month.items() -%}
                {%- do parts.append(month ~ ': ' ~ date_runs(dates)) -%}
            {%- endfor -%}
            {{ exceptions.raise_compiler_error('missing CBS_BALANCE batches for ' ~ (parts | join('; '))) }}
        {%- endif -%}
    {%- endif -%}
    select 1 as balance_batches_checked
{% endmacro %}

{#- Sorted YYYY-MM-DD strings as runs of consecutive days: "2026-12-01 … 2026-12-31 (31 days), 2027-01-04". -#}
{% macro date_runs(dates) %}
    {%- set datetime = modules.datetime -%}
    {%- set runs = [] -%}
    {%- for text in dates | sort -%}
        {%- set day = datetime.datetime.strptime(text, '%Y-%m-%d').date() -%}
        {%- if runs and (day - runs[-1][1]).days == 1 -%}
            {%- set first = runs[-1][0] -%}
            {%- do runs.pop() -%}
            {%- do runs.append([first, day]) -%}
        {%- else -%}
            {%- do runs.append([day, day]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set parts = [] -%}
    {%- for first, last in runs -%}
        {%- set days = (last - first).days + 1 -%}
        {%- do parts.append(first ~ ' … ' ~ last ~ ' (' ~ days ~ ' days)' if days > 2 else
                            ([first, last] | unique | join(', '))) -%}
    {%- endfor -%}
    {{ return(parts | join(', ')) }}
{% endmacro %}

{% macro parse_as_of_month_end(as_of_text) %}
    {%- set datetime = modules.datetime -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', as_of_text) -%}
        {{ exceptions.raise_compiler_error("var as_of '" ~ as_of_text ~ "' is not a date YYYY-MM-DD (a month's last day)") }}
    {%- endif -%}
    {%- set day = datetime.datetime.strptime(as_of_text, '%Y-%m-%d').date() -%}
    {%- if (day + datetime.timedelta(days=1)).month == day.month -%}
        {{ exceptions.raise_compiler_error("var as_of " ~ as_of_text ~ " is not a month's last day") }}
    {%- endif -%}
    {{ return(day) }}
{% endmacro %}

{% macro missing_balance_dates_sql(as_of_date) %}
    with

    loaded_balance_dates as (

        select distinct batch_log.batch_date
        from {{ source('audit', 'batch_log') }} as batch_log
        where batch_log.table_name = 'CBS_BALANCE'
            and batch_log.status = 'LOADED'

    ),

    window_bounds as (

        select
            cast(date_trunc('month', date '{{ as_of_date }}') as date) as month_start,
            cast(date_trunc('month', date '{{ as_of_date }}') - interval 2 month as date) as window_3m_start,
            (select min(loaded_balance_dates.batch_date) from loaded_balance_dates) as first_loaded_date

    ),

    required_dates as (

        -- The whole as_of month, plus the earlier window days from the first loaded date on.
        select {{ days_between(
            'least(window_bounds.month_start, greatest(window_bounds.window_3m_start, '
            ~ 'coalesce(window_bounds.first_loaded_date, window_bounds.month_start)))',
            "date '" ~ as_of_date ~ "'",
            'required_date'
        ) }}
        from window_bounds

    )

    select
        {{ date_text('required_dates.required_date', 'yyyy-MM') }} as missing_month,
        {{ date_text('required_dates.required_date', 'yyyy-MM-dd') }} as missing_date
    from required_dates
    where not exists (
        select 1
        from loaded_balance_dates
        where loaded_balance_dates.batch_date = required_dates.required_date
    )
    order by required_dates.required_date
{% endmacro %}
