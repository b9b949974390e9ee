{{ config(materialized='view') }}

with

fx_rates as (

    select * from {{ ref('stg_core_banking__fx_rates') }}

),

final as (

    -- Ingestion keeps one rate per currency and batch, dated the batch date (a re-delivered batch replaces
    -- the earlier one). Readers filter on batch_date, which prunes the raw zone to the days they need.
    select
        fx_rates.batch_date,
        fx_rates.currency,
        fx_rates.rate_date,
        fx_rates.cny_per_unit
    from fx_rates

)

select * from final
