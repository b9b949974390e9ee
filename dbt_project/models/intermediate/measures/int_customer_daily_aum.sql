with

balances as (

    select * from {{ ref('int_balances_converted_to_cny') }}

),

final as (

    -- Only AUM products count (seed rule_product_types.is_aum): LOAN and CARD balances are debts.
    select
        balances.cust_id,
        balances.balance_date,
        cast(sum(case when balances.is_aum then balances.balance_cny else 0 end) as decimal(38, 8)) as aum_cny,
        cast(sum(case when balances.is_deposit then balances.balance_cny else 0 end) as decimal(38, 8))
            as deposit_cny,
        count(*) as balance_rows
    from balances
    group by balances.cust_id, balances.balance_date

)

select * from final
