"""Other runtimes' views of the resolved model: the same depot as a Compose file."""
