"""Names vulture (``make lint``, 80 % confidence) reports as unused, each with the reason it stays.

Vulture reads this file and counts every name below as used; nothing imports it.
"""
