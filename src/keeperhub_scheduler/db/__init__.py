"""Database access: tables, engine, migrations."""
