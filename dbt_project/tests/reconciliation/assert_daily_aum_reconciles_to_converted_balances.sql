-- Σ of daily AUM per month equals Σ of converted AUM-product balances: nothing lost or doubled.
with

balances as (

    select * from {{ ref('int_balances_converted_to_cny') }}

),

daily_aum as (

    select * from {{ ref('int_customer_daily_aum') }}

),

balance_totals as (

    select
        date_trunc('month', balances.balance_date) as balance_month,
        sum(balances.balance_cny) filter (where balances.is_aum) as aum_cny,
        sum(balances.balance_cny) filter (where balances.is_deposit) as deposit_cny
    from balances
    group by 1

),

daily_totals as (

    select
        date_trunc('month', daily_aum.balance_date) as balance_month,
        sum(daily_aum.aum_cny) as aum_cny,
        sum(daily_aum.deposit_cny) as deposit_cny
    from daily_aum
    group by 1

)

select
    coalesce(balance_totals.balance_month, daily_totals.balance_month) as balance_month,
    balance_totals.aum_cny as balances_aum_cny,
    daily_totals.aum_cny as daily_aum_cny,
    balance_totals.deposit_cny as balances_deposit_cny,
    daily_totals.deposit_cny as daily_deposit_cny
from balance_totals
full outer join daily_totals
    on balance_totals.balance_month = daily_totals.balance_month
where coalesce(balance_totals.aum_cny, 0) <> coalesce(daily_totals.aum_cny, 0)
    or coalesce(balance_totals.deposit_cny, 0) <> coalesce(daily_totals.deposit_cny, 0)
