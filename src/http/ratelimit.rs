//! The process's limits as the HTTP layer sees them: [`crate::limits::Limits`] (rate limits,
//! sign-in back-off, password-hash slots). Refusals are 429 `rate_limit_exceeded` or 503
//! `temporarily_unavailable`, both with `Retry-After`.

pub use crate::limits::{Budget, Limits, SignIn};
