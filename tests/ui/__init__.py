"""Tests of the dashboard (asynctelemetry.ui)."""
