"""Monitoring: drift checks (small named units), text statistics, and the windows of served traffic."""
