"""Day two: what the depot's Docker host holds, read and changed through the docker CLI.

``depot doctor`` checks a host before ``up``, ``depot drift`` compares a running depot with the
plan, ``depot rotate`` changes a password the running services hold. Each talks to the stack's
``depot:docker.host`` through ``docker.DockerCli``.
"""
