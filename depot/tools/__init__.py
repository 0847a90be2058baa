"""Small command-line checks run by the quality gate."""
