"""Identity: staff users and roles, the permission matrix, logins (password + TOTP, phone OTP), API keys."""
