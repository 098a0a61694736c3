"""Payments: the channels money arrives through (gateway and UPI, BBPS, CSC agents) and settlement."""
