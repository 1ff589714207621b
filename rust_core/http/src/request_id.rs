//! A `Request-Id` header on every response (Segment's Profile API sets one): quoted in bug
//! reports and logs to find one request among many.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// Different in every process, so ids of two runs do not collide.
static PROCESS: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()));
static NEXT: AtomicU64 = AtomicU64::new(1);

/// The next id: the process's 16 hex digits, then the request's number.
pub fn next() -> String {
    format!("{:016x}-{:x}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn add(request: Request, next_layer: Next) -> Response {
    let mut response = next_layer.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&next()) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_within_a_process() {
        let (a, b) = (super::next(), super::next());
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next(), "same process part");
    }
}
