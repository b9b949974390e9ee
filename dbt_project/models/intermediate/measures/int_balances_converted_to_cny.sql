with

balances as (

    select * from {{ ref('stg_core_banking__balances') }}

),

accounts as (

    select * from {{ ref('stg_core_banking__accounts') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

product_types as (

    select * from {{ ref('rule_product_types') }}

),

balances_joined_to_accounts as (

    -- The account snapshot of the balance's own batch says whose account it is and which product.
    select
        balances.balance_date,
        balances.acct_id,
        accounts.cust_id,
        accounts.product_type,
        balances.currency,
        balances.balance_amount
    from balances
    left join accounts
        on balances.acct_id = accounts.acct_id
        and balances.batch_date = accounts.snapshot_date

),

balances_with_rates as (

    select
        balances_joined_to_accounts.*,
        case
            when balances_joined_to_accounts.currency = 'CNY' then cast(1 as decimal(18, 6))
            else fx_rates.cny_per_unit
        end as cny_per_unit
    from balances_joined_to_accounts
    left join fx_rates
        on balances_joined_to_accounts.currency = fx_rates.currency
        and balances_joined_to_accounts.balance_date = fx_rates.rate_date

),

final as (

    -- Widen before multiplying: DECIMAL(18,2) × DECIMAL(18,6) would stay DECIMAL(18,8) and overflow.
    select
        balances_with_rates.balance_date,
        balances_with_rates.acct_id,
        balances_with_rates.cust_id,
        balances_with_rates.product_type,
        balances_with_rates.currency,
        balances_with_rates.balance_amount,
        balances_with_rates.cny_per_unit,
        cast(
            cast(balances_with_rates.balance_amount as decimal(38, 2)) * balances_with_rates.cny_per_unit
            as decimal(38, 8)
        ) as balance_cny,
        product_types.is_aum,
        product_types.is_deposit
    from balances_with_rates
    left join product_types
        on balances_with_rates.product_type = product_types.product_type

)

select * from final
