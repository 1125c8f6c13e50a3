//! The client's one error: what went wrong with a call, typed by where it went wrong.

use mandate_api::Problem;

/// A call that did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached (or the request not sent).
    #[error("cannot reach Mandate at {addr}: {source}")]
    Transport {
        /// The server's address.
        addr: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The request could not be made from what was given: the address is not a URL,
    /// or the token cannot be a header (the message never shows the token).
    #[error("cannot make a request to {addr}: {reason}")]
    Request {
        /// The server's address, as given.
        addr: String,
        /// What is wrong with it, or with the token.
        reason: String,
    },
    /// The answer's body could not be read.
    #[error("reading the response: {0}")]
    Read(reqwest::Error),
    /// The server refused with a problem body (`application/problem+json`).
    #[error("{}", problem_message(problem, *status))]
    Problem {
        /// The HTTP status.
        status: u16,
        /// The problem.
        problem: Box<Problem>,
    },
    /// The server failed with a body that is not a problem.
    #[error("request failed (error, HTTP {status})")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The body, as sent.
        body: String,
    },
    /// A success whose body is not the answer the endpoint documents.
    #[error("the server's answer is not what the API says: {source}")]
    Decode {
        /// Why it did not read.
        source: serde_json::Error,
        /// The body, as sent.
        body: String,
    },
}

impl Error {
    /// The failure a non-2xx answer is.
    pub(crate) fn from_failure(status: u16, body: String) -> Self {
        match serde_json::from_str::<Problem>(&body) {
            Ok(p) => Self::Problem {
                status,
                problem: Box::new(p),
            },
            Err(_) => Self::Status { status, body },
        }
    }

    /// The failure of a request that was not sent: a request that could not be built
    /// (its cause, which reqwest's own message leaves out) or a server not reached.
    pub(crate) fn unsent(addr: &str, source: reqwest::Error) -> Self {
        let addr = addr.to_owned();
        if !source.is_builder() {
            return Self::Transport { addr, source };
        }
        let reason = std::error::Error::source(&source)
            .map_or_else(|| source.to_string(), ToString::to_string);
        Self::Request { addr, reason }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Problem { status, .. } | Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem body, when the server sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// `detail (code, HTTP status)`, then each located policy error on a line of its own.
fn problem_message(p: &Problem, status: u16) -> String {
    let mut msg = format!("{} ({}, HTTP {status})", p.detail, p.code);
    for e in p.errors.iter().flatten() {
        msg.push_str(&format!(
            "\n  {}:{}:{}: {}",
            e.source,
            e.line.unwrap_or(0),
            e.column.unwrap_or(0),
            e.message
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_body_is_a_problem_and_reads_as_one_message() {
        let body = r#"{"type":"urn:mandate:error:invalid_policy","title":"Bad Request",
            "status":400,"detail":"1 problem(s)","code":"invalid_policy",
            "errors":[{"source":"policies","line":2,"column":5,"message":"unexpected token"}]}"#;
        let e = Error::from_failure(400, body.to_owned());
        assert_eq!(e.status(), Some(400));
        assert_eq!(
            e.problem().and_then(Problem::error_code),
            Some(mandate_api::ErrorCode::InvalidPolicy)
        );
        assert_eq!(
            e.to_string(),
            "1 problem(s) (invalid_policy, HTTP 400)\n  policies:2:5: unexpected token"
        );
    }

    #[test]
    fn any_other_failure_keeps_its_body_and_status() {
        let e = Error::from_failure(502, "bad gateway".to_owned());
        assert!(matches!(&e, Error::Status { status: 502, body } if body == "bad gateway"));
        assert_eq!(e.to_string(), "request failed (error, HTTP 502)");
        assert!(e.problem().is_none());
    }
}
