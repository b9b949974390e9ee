with

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

balance_sums as (

    select * from {{ ref('int_customer_monthly_balance_sums') }}

),

month_end_loans as (

    select * from {{ ref('int_month_end_loans_converted_to_cny') }}

),

current_balance_sums as (

    -- Only rows of the build whose coverage holds their month now: if a month became evaluable after a
    -- later month was built, the later build's rows for it are stale until that build is redone.
    select balance_sums.*
    from balance_sums
    inner join months as covering_build
        on balance_sums.as_of_month = covering_build.as_of_month
        and balance_sums.month_start >= cast(date_trunc('month', covering_build.coverage_start) as date)
    -- The three-month window only (rows are stored in month order, so this skips the older months' blocks).
    where
        balance_sums.month_start >= (
            select min(cast(date_trunc('month', months.window_3m_start) as date))
            from months
            where {{ in_evaluation_month('months.as_of_month') }}
        )

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
    where {{ in_evaluation_month('snapshots.as_of_month') }}
        and not snapshots.is_closed

),

window_sums as (

    -- The month's and the three-month window's sums, from the calendar-month sums of the builds that read
    -- them (days before the first loaded balance date were never loaded). A day without a balance row adds
    -- nothing: it counts 0 in the numerator, 1 in the days.
    select
        customers_in_month.as_of_month,
        customers_in_month.cust_id,
        cast(coalesce(sum(balance_sums.aum_sum_cny) filter (
            where balance_sums.month_start = months.month_start
        ), 0) as decimal(38, 8)) as aum_sum_cny,
        cast(coalesce(sum(balance_sums.aum_sum_cny), 0) as decimal(38, 8)) as aum_3m_sum_cny,
        cast(coalesce(sum(balance_sums.deposit_sum_cny) filter (
            where balance_sums.month_start = months.month_start
        ), 0) as decimal(38, 8)) as deposit_sum_cny
    from customers_in_month
    inner join months
        on customers_in_month.as_of_month = months.as_of_month
    left join current_balance_sums as balance_sums
        on customers_in_month.cust_id = balance_sums.cust_id
        and balance_sums.month_start
        between cast(date_trunc('month', months.window_3m_start) as date) and months.month_start
    group by 1, 2

),

loan_outstanding as (

    select
        month_end_loans.as_of_month,
        month_end_loans.cust_id,
        sum(month_end_loans.outstanding_cny) as loan_outstanding_sum_cny
    from month_end_loans
    where {{ in_evaluation_month('month_end_loans.as_of_month') }}
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
