with

source as (

    select * from {{ source('core_banking', 'cbs_fx_rate') }}

),

final as (

    select
        batch_date,
        currency,
        rate_date,
        cny_per_unit

    from source

)

select * from final
