-- Raw names, certificate numbers and mobiles never reach a mart, by column name or by value.
with

customer_segment as (

    select * from {{ ref('customer_segment') }}
    where {{ in_evaluation_month('as_of_month') }}

),

snapshots as (

    select * from {{ ref('int_customer_month_end_snapshots') }}
    where {{ in_evaluation_month('as_of_month') }}

),

raw_columns_in_marts as (

    select
        catalog_columns.table_name as found_in,
        catalog_columns.column_name as detail
    from {{ catalog_columns(target.schema ~ '_marts') }} as catalog_columns
    where catalog_columns.column_name in ('cust_name', 'cert_no', 'mobile')

),

unmasked_values as (

    -- A value long enough to be masked must differ from the original.
    select
        'customer_segment' as found_in,
        customer_segment.cust_id as detail
    from customer_segment
    inner join snapshots
        on customer_segment.as_of_month = snapshots.as_of_month
        and customer_segment.cust_id = snapshots.cust_id
    where (length(snapshots.cust_name) > 1 and customer_segment.cust_name_masked = snapshots.cust_name)
        or (length(snapshots.cert_no) > 7 and customer_segment.cert_no_masked = snapshots.cert_no)
        or (length(snapshots.mobile) > 7 and customer_segment.mobile_masked = snapshots.mobile)

)

select * from raw_columns_in_marts
union all
select * from unmasked_values
