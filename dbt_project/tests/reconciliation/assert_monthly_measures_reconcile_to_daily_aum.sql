-- Each customer's monthly AUM sum equals Σ of its daily AUM over the month's days.
with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

daily_aum as (

    select * from {{ ref('int_customer_daily_aum') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

daily_sums as (

    select
        months.as_of_month,
        daily_aum.cust_id,
        sum(daily_aum.aum_cny) as aum_sum_cny
    from months
    inner join daily_aum
        on daily_aum.balance_date between months.month_start and months.as_of_month
    group by 1, 2

)

select
    measures.as_of_month,
    measures.cust_id,
    measures.aum_sum_cny,
    daily_sums.aum_sum_cny as daily_aum_sum_cny
from measures
left join daily_sums
    on measures.as_of_month = daily_sums.as_of_month
    and measures.cust_id = daily_sums.cust_id
where measures.aum_sum_cny <> coalesce(daily_sums.aum_sum_cny, 0)
