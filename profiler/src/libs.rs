//! Library discovery.
