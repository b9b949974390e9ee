-- Every parameter the models read from rule_parameters is present (a missing one would read as NULL).
with

rule_parameters as (

    select * from {{ ref('rule_parameters') }}

),

required as (

    select required_parameters.*
    from (
        values
        ('rules_version'), ('corporate_cust_types'), ('mask_char'),
        ('mask_cust_name_keep_first'), ('mask_cust_name_keep_last'),
        ('mask_cert_no_keep_first'), ('mask_cert_no_keep_last'),
        ('mask_mobile_keep_first'), ('mask_mobile_keep_last')
    ) as required_parameters (parameter)

)

select required.parameter
from required
left join rule_parameters
    on required.parameter = rule_parameters.parameter
where rule_parameters.value is null
