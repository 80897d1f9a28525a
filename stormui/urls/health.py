"""What load balancers and Prometheus ask (:mod:`stormui.health`): no login, no slash."""

from django.urls import path

from .. import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]
