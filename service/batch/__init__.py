"""Batch scoring of feedback exports: streaming readers and writers, a resumable local runner,
the report, and a Ray Data engine for clusters."""
