"""What a person runs besides the monthly job: explain, backtest, status, rollback, preflight, generate."""
