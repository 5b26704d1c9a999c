"""The BDD file service: its client, its wire format, its errors."""
