with

daily_activity as (

    select * from {{ ref('int_customer_daily_activity') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

build_month as (

    select months.* from months
    where months.as_of_month = {{ evaluation_month() }}

),

activity_this_build as (

    select
        daily_activity.cust_id,
        max(daily_activity.activity_date) as last_activity_date
    from daily_activity
    where daily_activity.as_of_month = (select build_month.as_of_month from build_month)
    group by 1

),

previous_month_state as (

    -- Each customer's last activity as the previous evaluated month left it: R needs no older history.
    {%- if is_incremental() %}
    select previous_state.cust_id, previous_state.last_activity_date
    from {{ this }} as previous_state
    where previous_state.as_of_month = (select build_month.previous_as_of_month from build_month)
    {%- else %}
    select
        cast(null as string) as cust_id,
        cast(null as date) as last_activity_date
    where false
    {%- endif %}

),

final as (

    -- Grain: one row per customer with any customer-initiated transaction up to the month's end.
    select
        build_month.as_of_month,
        coalesce(activity_this_build.cust_id, previous_month_state.cust_id) as cust_id,
        greatest(activity_this_build.last_activity_date, previous_month_state.last_activity_date)
            as last_activity_date
    from activity_this_build
    full outer join previous_month_state
        on activity_this_build.cust_id = previous_month_state.cust_id
    cross join build_month

)

select * from final
