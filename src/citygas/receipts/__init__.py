"""Receipts of vends: PDF in English and Hindi with a verification QR code, a 58 mm thermal layout
(plain text, ESC/POS and an HTML print view), and the public verification page."""
