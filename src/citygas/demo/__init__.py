"""The demo: two CGDs with areas, one user per role, and households, so `make run` shows the product."""
