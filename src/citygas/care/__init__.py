"""Care: complaints, service requests and the gas-leak emergency lane (tickets, SLAs, the care queue)."""
