"""AutoRetrain's own database: every table in one MetaData (``schema``), the one engine factory
(``engine``) and the Alembic migrations that bring a database to the schema this code needs
(``migrate``, ``migrations/versions/``). Nothing creates tables at run time: ``autoretrain db upgrade``
does, and every process that opens the database checks first that it is at head."""
