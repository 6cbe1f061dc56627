"""Storage layer: the Django models and the ORM storage that maps them to core instances."""
