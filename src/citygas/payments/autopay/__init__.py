"""Auto top-up: a UPI AutoPay mandate per connection that tops the meter up when its balance runs low."""
