"""The BBPS biller channel: bill fetch, payment notification → vend, status check."""
