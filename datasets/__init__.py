"""Built-in dataset adapters, one folder each (imported as benchsr.datasets.<name>)."""
