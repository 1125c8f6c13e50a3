//! Behavioural baselines and anomaly scoring: what each agent normally does, learned
//! from its own decisions, and how far a new request strays from it.
//!
//! This crate does no IO and reads no clock: every call takes the time, and the caller
//! (the server) stores baselines and anomalies. [`Baseline`] is the pure per-agent
//! model; [`Detector`] keeps one per agent behind a lock and remembers which agents it
//! suspended, so its answer holds for the very next request.
//!
//! The flow for each request: [`Detector::assess`] before the policies run (it learns
//! the request, raises findings for what is new or too fast, and returns the request's
//! [`Risk`], which policies see as `context.risk`), then [`Detector::outcome`] with the
//! decision (it learns the deny rate and raises probing bursts).

#![warn(missing_docs)]

mod baseline;
mod config;
mod detector;

pub use baseline::{Assessment, Baseline, Finding, Kind, Pending, Request};
pub use config::{DetectConfig, Response, Responses};
pub use detector::{Detector, Suspended};
pub use mandate_core::risk::{Risk, Severity};
