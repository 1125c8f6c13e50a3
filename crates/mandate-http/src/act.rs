//! The edge's door to the node's one write path: [`Acts::act`] is
//! `mandate_service::Node::perform` (commit, refresh the snapshot, record the act's
//! audit event) with the edge's error type, so a handler's work can refuse with an
//! [`ApiError`] and the node's own failures arrive as one.

use std::future::Future;
use std::sync::Arc;

use mandate_service::actor::Actor;
use mandate_service::{Node, Recorded};

use crate::error::ApiError;

/// [`Node::perform`] answering [`ApiError`].
pub(crate) trait Acts {
    /// Runs `work` through the one write path and records its event `kind` by `actor`
    /// (see [`Node::perform`]).
    fn act<T: Send + 'static>(
        self: &Arc<Self>,
        kind: &'static str,
        actor: &Actor,
        work: impl FnOnce(&Node) -> Result<(T, Recorded), ApiError> + Send + 'static,
    ) -> impl Future<Output = Result<T, ApiError>> + Send;
}

impl Acts for Node {
    fn act<T: Send + 'static>(
        self: &Arc<Self>,
        kind: &'static str,
        actor: &Actor,
        work: impl FnOnce(&Node) -> Result<(T, Recorded), ApiError> + Send + 'static,
    ) -> impl Future<Output = Result<T, ApiError>> + Send {
        self.perform(kind, actor, work)
    }
}
