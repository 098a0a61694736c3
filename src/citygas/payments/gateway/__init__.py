"""Online payments through a Razorpay-compatible gateway (cards, net banking, UPI): orders, checkout,
signed webhooks, capture → vend, refunds; with a local simulator so the demo works offline."""
