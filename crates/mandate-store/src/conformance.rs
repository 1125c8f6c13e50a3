//! The conformance kit: what every backend must do, as checks over a fresh [`Store`].
//! A backend's test suite expands [`crate::conformance_tests!`] with a function that
//! opens a fresh, empty store; each check becomes one test.
