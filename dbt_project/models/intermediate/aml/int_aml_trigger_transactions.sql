with

txns as (

    select * from {{ ref('int_transactions_converted_to_cny') }}

),

measures as (

    select * from {{ ref('int_customer_monthly_measures') }}

),

months as (

    select * from {{ ref('int_evaluation_months') }}

),

month_txns_flagged as (

    -- AML looks at every transaction of the month (bank postings included) of customers evaluated at M.
    select
        measures.as_of_month,
        txns.*,
        {{ in_rule_list('txns.txn_type', 'aml', 'cross_border_txn_types') }} as is_cross_border
    from measures
    inner join months
        on measures.as_of_month = months.as_of_month
    inner join txns
        on measures.cust_id = txns.cust_id
        and txns.txn_date between months.month_start and months.as_of_month
    where {{ in_evaluation_month('measures.as_of_month') }}

),

month_txns as (

    -- USD equivalent = amount × rate(ccy) ÷ rate(USD) of that day, exact to 10⁻⁸ USD, half up.
    select
        month_txns_flagged.*,
        case
            when month_txns_flagged.is_cross_border
                then {{ exact_divide_round(
                    'month_txns_flagged.amount_cny * 1000000', 'month_txns_flagged.cny_per_usd * 1000000', 8) }}
        end as amount_usd
    from month_txns_flagged

),

cash_large as (

    -- One cash transaction at or above the floor (in CNY at the day's rate) is enough.
    select
        'CASH_LARGE' as aml_trigger,
        month_txns.*
    from month_txns
    where month_txns.is_cash
        and month_txns.amount_cny >= {{ rule_value('aml', 'cash_single_min_cny') }}

),

cross_border_totals as (

    select
        month_txns.as_of_month,
        month_txns.cust_id
    from month_txns
    where month_txns.is_cross_border
    group by 1, 2
    having sum(month_txns.amount_usd) >= {{ rule_value('aml', 'cross_border_monthly_min_usd') }}

),

cross_border_total as (

    -- Every cross-border transaction of the month explains a total that reached the floor.
    select
        'CROSS_BORDER_TOTAL' as aml_trigger,
        month_txns.*
    from month_txns
    inner join cross_border_totals
        on month_txns.as_of_month = cross_border_totals.as_of_month
        and month_txns.cust_id = cross_border_totals.cust_id
    where month_txns.is_cross_border

),

high_risk_country as (

    select
        'HIGH_RISK_COUNTRY' as aml_trigger,
        month_txns.*
    from month_txns
    where {{ in_rule_list('month_txns.counterparty_country', 'aml', 'high_risk_countries') }}

),

triggers as (

    select * from cash_large
    union all
    select * from cross_border_total
    union all
    select * from high_risk_country

),

final as (

    select
        triggers.as_of_month,
        triggers.cust_id,
        -- `trigger` is a keyword, but it is the published column's name (the AML contract).
        triggers.aml_trigger as trigger,  -- noqa: RF04
        triggers.txn_id,
        triggers.txn_at as txn_time,
        triggers.txn_type,
        triggers.txn_amount as amount,
        triggers.currency,
        triggers.amount_cny,
        triggers.amount_usd,
        triggers.counterparty_country
    from triggers

)

select * from final
