"""What generations cost: the price table, billing of attempts, and budgets at submit."""
