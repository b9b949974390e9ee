with

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

daily_aum as (

    select * from {{ ref('int_customer_daily_aum') }}

),

month_end_loans as (

    select * from {{ ref('int_month_end_loans_converted_to_cny') }}

),

customers_in_month as (

    -- Closed customers (month-end status C) get no measures and no tier.
    select
        snapshots.as_of_month,
        snapshots.cust_id,
        snapshots.cust_type,
        snapshots.branch_id,
        snapshots.is_retail,
        snapshots.customer_status
    from snapshots
    where not snapshots.is_closed

),

calendar_month_sums as (

    -- Days before the first loaded balance date lie outside every window.
    select
        daily_aum.cust_id,
        cast(date_trunc('month', daily_aum.balance_date) as date) as month_start,
        sum(daily_aum.aum_cny) as aum_sum_cny,
        sum(daily_aum.deposit_cny) as deposit_sum_cny
    from daily_aum
    where daily_aum.balance_date >= (select min(months.first_loaded_balance_date) from months)
    group by 1, 2

),

window_sums as (

    -- A day without a balance row adds nothing: it counts 0 in the numerator, 1 in the days.
    select
        customers_in_month.as_of_month,
        customers_in_month.cust_id,
        cast(coalesce(sum(calendar_month_sums.aum_sum_cny) filter (
            where calendar_month_sums.month_start = months.month_start
        ), 0) as decimal(38, 8)) as aum_sum_cny,
        cast(coalesce(sum(calendar_month_sums.aum_sum_cny), 0) as decimal(38, 8)) as aum_3m_sum_cny,
        cast(coalesce(sum(calendar_month_sums.deposit_sum_cny) filter (
            where calendar_month_sums.month_start = months.month_start
        ), 0) as decimal(38, 8)) as deposit_sum_cny
    from customers_in_month
    inner join months
        on customers_in_month.as_of_month = months.as_of_month
    left join calendar_month_sums
        on customers_in_month.cust_id = calendar_month_sums.cust_id
        and calendar_month_sums.month_start
        between cast(months.month_start - interval 2 month as date) and months.month_start
    group by 1, 2

),

loan_outstanding as (

    select
        month_end_loans.as_of_month,
        month_end_loans.cust_id,
        sum(month_end_loans.outstanding_cny) as loan_outstanding_sum_cny
    from month_end_loans
    group by 1, 2

),

final as (

    select
        customers_in_month.as_of_month,
        months.month_start,
        customers_in_month.cust_id,
        customers_in_month.cust_type,
        customers_in_month.branch_id,
        customers_in_month.is_retail,
        customers_in_month.customer_status,
        window_sums.aum_sum_cny,
        months.days_in_month as aum_days,
        window_sums.aum_3m_sum_cny,
        months.days_in_window_3m as aum_3m_days,
        window_sums.deposit_sum_cny,
        cast(coalesce(loan_outstanding.loan_outstanding_sum_cny, 0) as decimal(38, 8))
            as loan_outstanding_exact_cny,
        {{ exact_avg_round2('window_sums.aum_sum_cny', 'months.days_in_month') }} as avg_daily_aum_cny,
        {{ exact_avg_round2('window_sums.aum_3m_sum_cny', 'months.days_in_window_3m') }} as aum_3m_avg_cny,
        {{ exact_avg_round2('window_sums.deposit_sum_cny', 'months.days_in_month') }} as avg_daily_deposit_cny,
        {{ exact_avg_round2('coalesce(loan_outstanding.loan_outstanding_sum_cny, 0)', '1') }}
            as loan_outstanding_cny
    from customers_in_month
    inner join months
        on customers_in_month.as_of_month = months.as_of_month
    inner join window_sums
        on customers_in_month.as_of_month = window_sums.as_of_month
        and customers_in_month.cust_id = window_sums.cust_id
    left join loan_outstanding
        on customers_in_month.as_of_month = loan_outstanding.as_of_month
        and customers_in_month.cust_id = loan_outstanding.cust_id

)

select * from final
