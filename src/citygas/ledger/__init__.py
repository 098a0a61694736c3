"""Double-entry ledger in integer paise: chart, postings, derived balances, period close."""
