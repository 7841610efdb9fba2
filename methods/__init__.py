"""Built-in method plugins, one folder each (imported as benchsr.methods.<name>)."""
