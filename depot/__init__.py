"""depot-infra: the depot's Docker deployment as a Pulumi program.

Importing this package registers nothing; ``depot.program.deploy`` builds the stack.
"""
