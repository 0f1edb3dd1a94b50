"""Pictures and videos of what skills do."""
