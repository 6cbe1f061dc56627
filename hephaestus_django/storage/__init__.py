"""Storage layer: the Django models (``models``), the storage that maps them to core instances and
makes every query of these tables (``orm.DjangoStorage``), and its PostgreSQL statements (``sql``)."""
