-- Each customer's monthly AUM and deposit sums equal the balance sums of the month's build: nothing lost
-- or doubled between the balances and the measures (the gate reconciles the total with raw balances).
with

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}
    where {{ in_evaluation_month('as_of_month') }}

),

balance_sums as (

    select * from {{ ref('int_customer_monthly_balance_sums') }}
    where {{ in_evaluation_month('as_of_month') }}

)

select
    measures.as_of_month,
    measures.cust_id,
    measures.aum_sum_cny,
    balance_sums.aum_sum_cny as balance_sums_aum_cny
from measures
left join balance_sums
    on measures.as_of_month = balance_sums.as_of_month
    and measures.month_start = balance_sums.month_start
    and measures.cust_id = balance_sums.cust_id
where measures.aum_sum_cny <> coalesce(balance_sums.aum_sum_cny, 0)
    or measures.deposit_sum_cny <> coalesce(balance_sums.deposit_sum_cny, 0)
