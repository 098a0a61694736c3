"""Notifications: SMS, email, push and WhatsApp through adapters behind one port."""
