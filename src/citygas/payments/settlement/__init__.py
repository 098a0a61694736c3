"""Settlement and reconciliation: gateway/BBPS settlement reports matched to vends and posted to the
bank, daily collection summaries per channel, agent float reconciliation."""
