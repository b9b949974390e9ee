-- exact_divide_round keeps every decimal of a large CNY amount converted at a 6-decimal rate (the AML
-- USD equivalent), on both engines: Spark's own DECIMAL division would trim the scale of such operands.
with

cases as (

    select wide_cases.*
    from (
        values
        (
            cast('1773976.95' as decimal(38, 8)), cast('7.123456' as decimal(18, 6)),
            cast('249033.18698115' as decimal(38, 8))
        ),
        (
            cast('98765432109.87' as decimal(38, 8)), cast('7.000001' as decimal(18, 6)),
            cast('14109345428.64636734' as decimal(38, 8))
        ),
        (
            cast('-5866173.81' as decimal(38, 8)), cast('6.543210' as decimal(18, 6)),
            cast('-896528.43329192' as decimal(38, 8))
        )
    ) as wide_cases (amount_cny, cny_per_usd, expected_usd)

),

computed as (

    select
        cases.*,
        {{ exact_divide_round('cases.amount_cny * 1000000', 'cases.cny_per_usd * 1000000', 8) }} as actual_usd
    from cases

)

select computed.*
from computed
where computed.actual_usd is distinct from computed.expected_usd
