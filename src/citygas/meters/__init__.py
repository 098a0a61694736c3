"""Meters: the registry and lifecycle of prepaid gas meters, the pure meter model, the meter-link protocol,
and the meter and fleet simulators."""
