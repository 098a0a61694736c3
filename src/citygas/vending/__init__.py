"""Vending: a payment becomes gas credit on a meter (waterfall, ledger, STS tokens, receipt), exactly once."""
