"""Registry: institutions, departments, practitioners, source systems, terminology."""
