"""Customers: households and their premises; consumer numbers; KYC and the interaction log grow here."""
