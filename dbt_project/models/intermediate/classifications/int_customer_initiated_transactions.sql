{{ config(materialized='view') }}

with

txns as (

    select * from {{ ref('int_transactions_converted_to_cny') }}

),

final as (

    -- Bank postings (rfm_non_activity_txn_types, e.g. FEE and INT) are not customer activity.
    select
        txns.txn_id,
        txns.cust_id,
        txns.txn_at,
        txns.txn_date,
        txns.txn_type,
        txns.channel
    from txns
    where txns.is_customer_initiated

)

select * from final
