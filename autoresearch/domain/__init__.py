"""The pure domain model: no I/O and no framework imports."""
