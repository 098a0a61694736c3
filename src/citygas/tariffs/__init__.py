"""Tariffs and charges: gas price per SCM by charge area and date, taxes as data, charges, instalments."""
