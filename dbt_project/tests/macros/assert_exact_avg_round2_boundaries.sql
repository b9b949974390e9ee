-- exact_avg_round2 rounds half up (away from zero) at .xx5 and never goes through DOUBLE.
with

cases as (

    select boundary_cases.*
    from (
        values
        (cast('0.03' as decimal(38, 8)), 2, cast('0.02' as decimal(18, 2))),
        (cast('0.01' as decimal(38, 8)), 2, cast('0.01' as decimal(18, 2))),
        (cast('20.01' as decimal(38, 8)), 2, cast('10.01' as decimal(18, 2))),
        (cast('31000.155' as decimal(38, 8)), 31, cast('1000.01' as decimal(18, 2))),
        (cast('31000.15499969' as decimal(38, 8)), 31, cast('1000.00' as decimal(18, 2))),
        (cast('3.875' as decimal(38, 8)), 31, cast('0.13' as decimal(18, 2))),
        (cast('3.845' as decimal(38, 8)), 31, cast('0.12' as decimal(18, 2))),
        (cast('-3.875' as decimal(38, 8)), 31, cast('-0.13' as decimal(18, 2))),
        (cast('2.345' as decimal(38, 8)), 1, cast('2.35' as decimal(18, 2))),
        (cast('2.34499999' as decimal(38, 8)), 1, cast('2.34' as decimal(18, 2))),
        (cast('0.00000001' as decimal(38, 8)), 1, cast('0.00' as decimal(18, 2))),
        (cast('186000000000.00' as decimal(38, 8)), 31, cast('6000000000.00' as decimal(18, 2))),
        (cast('185999999999.69' as decimal(38, 8)), 31, cast('5999999999.99' as decimal(18, 2))),
        (cast('0' as decimal(38, 8)), 28, cast('0.00' as decimal(18, 2)))
    ) as boundary_cases (sum_cny, days, expected_cny)

),

computed as (

    select
        cases.*,
        {{ exact_avg_round2('cases.sum_cny', 'cases.days') }} as actual_cny,
        typeof({{ exact_avg_round2('cases.sum_cny', 'cases.days') }}) as actual_type
    from cases

)

select computed.*
from computed
where computed.actual_cny is distinct from computed.expected_cny
    or upper(computed.actual_type) <> 'DECIMAL(18,2)'
