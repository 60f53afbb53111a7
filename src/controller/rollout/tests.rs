//! Tests of the rollout controller against a mock apiserver.
