"""Database backends: ``ENGINE = "pa_dbhealth.backends.mysql"``."""
