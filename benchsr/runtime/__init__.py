"""The machine a run is on: torchrun ranks (distributed), devices and precision (devices), fault
injection and time limits (guards)."""
