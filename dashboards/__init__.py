"""dashboards job."""
