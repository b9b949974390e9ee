with

txns as (

    select * from {{ ref('stg_core_banking__txns') }}

),

accounts as (

    select * from {{ ref('stg_core_banking__accounts') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

latest_txn_deliveries as (

    -- A transaction re-delivered in a later batch replaces the earlier one, like FX rates.
    select txns.*
    from txns
    qualify row_number() over (partition by txns.txn_id order by txns.batch_date desc) = 1

),

txns_joined_to_accounts as (

    -- The account snapshot of the transaction's own batch says whose account it is.
    select
        latest_txn_deliveries.txn_id,
        latest_txn_deliveries.batch_date,
        latest_txn_deliveries.acct_id,
        accounts.cust_id,
        latest_txn_deliveries.txn_at,
        cast(latest_txn_deliveries.txn_at as date) as txn_date,
        latest_txn_deliveries.txn_type,
        latest_txn_deliveries.txn_amount,
        latest_txn_deliveries.currency,
        latest_txn_deliveries.channel,
        latest_txn_deliveries.is_cash,
        latest_txn_deliveries.counterparty_country
    from latest_txn_deliveries
    left join accounts
        on latest_txn_deliveries.acct_id = accounts.acct_id
        and latest_txn_deliveries.batch_date = accounts.snapshot_date

),

rates_added as (

    -- The rates of the transaction's own day; CNY needs none.
    select
        txns_joined_to_accounts.*,
        case
            when txns_joined_to_accounts.currency = 'CNY' then cast(1 as decimal(18, 6))
            else currency_rates.cny_per_unit
        end as cny_per_unit,
        usd_rates.cny_per_unit as cny_per_usd
    from txns_joined_to_accounts
    left join fx_rates as currency_rates
        on txns_joined_to_accounts.currency = currency_rates.currency
        and txns_joined_to_accounts.txn_date = currency_rates.rate_date
    left join fx_rates as usd_rates
        on usd_rates.currency = 'USD'
        and txns_joined_to_accounts.txn_date = usd_rates.rate_date

),

final as (

    -- Widen before multiplying, as for balances: the exact CNY amount is DECIMAL(38,8).
    select
        rates_added.txn_id,
        rates_added.batch_date,
        rates_added.acct_id,
        rates_added.cust_id,
        rates_added.txn_at,
        rates_added.txn_date,
        rates_added.txn_type,
        rates_added.txn_amount,
        rates_added.currency,
        rates_added.channel,
        rates_added.is_cash,
        rates_added.counterparty_country,
        rates_added.cny_per_unit,
        rates_added.cny_per_usd,
        cast(cast(rates_added.txn_amount as decimal(38, 2)) * rates_added.cny_per_unit as decimal(38, 8))
            as amount_cny,
        not {{ in_rule_list('rates_added.txn_type', 'rfm_non_activity_txn_types') }} as is_customer_initiated,
        {{ in_rule_list('rates_added.txn_type', 'aml_cross_border_txn_types') }} as is_cross_border
    from rates_added

)

select * from final
