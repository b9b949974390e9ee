with

source as (

    select * from {{ source('audit', 'batch_log') }}

),

final as (

    select
        batch_date,
        table_name,
        file_name,
        records as record_count,
        loaded as loaded_count,
        quarantined as quarantined_count,
        byte_size,
        md5,
        encoding,
        status as batch_status,
        message as batch_message,
        started_at,
        finished_at,
        status = 'LOADED' as is_loaded

    from source

)

select * from final
