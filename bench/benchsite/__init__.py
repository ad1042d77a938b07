"""The Django site ``bench/load.py`` serves under uWSGI; configured by environment variables."""
