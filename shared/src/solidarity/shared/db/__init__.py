"""PostgreSQL access shared by the services: pool factory and migration runner."""
