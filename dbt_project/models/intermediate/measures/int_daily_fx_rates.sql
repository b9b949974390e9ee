with

fx_rates as (

    select * from {{ ref('stg_core_banking__fx_rates') }}

),

final as (

    -- A rate re-delivered in a later batch replaces the earlier one.
    select
        fx_rates.currency,
        fx_rates.rate_date,
        fx_rates.cny_per_unit,
        fx_rates.batch_date
    from fx_rates
    qualify row_number() over (
        partition by fx_rates.currency, fx_rates.rate_date
        order by fx_rates.batch_date desc
    ) = 1

)

select * from final
