"""Persistence: SQLModel tables, engines, repositories and Alembic migrations."""
