"""Use cases: apply events to read models and plan deliveries; send what is due; reconcile."""
