"""Metering: the readings a meter signs and a phone (or the platform) carries in, and what they tell us —
the meter's credit and valve, its consumption, and which vend tokens it has accepted."""
