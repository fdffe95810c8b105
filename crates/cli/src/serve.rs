//! `augur serve`.
