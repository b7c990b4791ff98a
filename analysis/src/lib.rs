//! Metric analysis for Sluice: providers fetch, judges decide. Nothing here talks to Kubernetes.
