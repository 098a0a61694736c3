"""CSC agents: profiles, prepaid floats, float top-ups approved by the back office, vends from the float,
commission, daily statements and the agent portal."""
