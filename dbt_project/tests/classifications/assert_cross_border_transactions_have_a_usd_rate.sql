-- Every cross-border transaction the month's build reads has its day's USD rate (AML converts it to USD).
-- Filtered on the raw transaction type first: the month's other transactions are never joined.
with

txns as (

    select * from {{ ref('stg_core_banking__txns') }}

),

fx_rates as (

    select * from {{ ref('int_daily_fx_rates') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

build_month as (

    select months.*
    from months
    where months.as_of_month = {{ evaluation_month() }}

),

cross_border as (

    select
        txns.txn_id,
        txns.batch_date,
        cast(txns.txn_at as date) as txn_date
    from txns
    where {{ in_build_coverage('txns.batch_date') }}
        and {{ in_rule_list('txns.txn_type', 'aml', 'cross_border_txn_types') }}

),

usd_rates as (

    select fx_rates.rate_date
    from fx_rates
    where fx_rates.currency = 'USD'
        and {{ in_build_coverage('fx_rates.batch_date') }}

)

select
    cross_border.txn_id,
    cross_border.batch_date
from cross_border
left join usd_rates
    on cross_border.txn_date = usd_rates.rate_date
where usd_rates.rate_date is null
