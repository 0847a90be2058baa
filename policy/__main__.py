"""CrossGuard entry point: `pulumi preview --policy-pack policy` runs the depot's rules.

Constructing PolicyPack starts the policy server, so it happens here and nowhere else.
"""

from pulumi_policy import EnforcementLevel, Policy, PolicyPack

from depot.policy.crossguard import policies

rules: list[Policy] = [*policies()]

PolicyPack(
    name="depot-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=rules,
)
