"""Built-in harness plugins."""
