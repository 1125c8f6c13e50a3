//! Mandate's vocabulary: identifiers, agents, mandates, credentials, admin roles, time,
//! randomness and W3C trace context.
//!
//! This crate does no network or disk IO. Everything that reads the outside world (the
//! wall clock, the OS random source) is reached through the [`clock::Clock`] and
//! [`random::Random`] traits so that tests can control it.

#![warn(missing_docs)]

pub mod admin;
pub mod agent;
pub mod clock;
pub mod credential;
pub mod decision;
pub mod id;
pub mod identity;
pub mod integer;
pub mod mandate;
pub mod problem;
pub mod random;
pub mod risk;
pub mod time;
pub mod trace;
pub mod uri;
