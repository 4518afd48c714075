//! The access table: every route origin serves, with who may call it. [`super::guard`] refuses
//! a matched route that is not listed here, and the route-matrix test
//! (`origin/tests/auth.rs`) exercises every entry with every kind of caller and checks that
//! every route in the source is listed.

use super::Scope;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes).
    Public,
    /// Authenticated by the handler with an HMAC signature, not a token (intake).
    Signed,
    /// A bearer token holding this scope.
    Scope(Scope),
    /// The web console: the page checks its own session cookie ([`crate::console::session`]);
    /// bearer tokens are not looked at.
    Console,
}

/// One route.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The HTTP method (`HEAD` is checked as `GET`).
    pub method: &'static str,
    /// The path as given to axum (`{id}` for parameters).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether each call (also one refused for its scope) is written to the audit log.
    pub audited: bool,
}

const fn route(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        audited: false,
    }
}

const fn audited(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        audited: true,
    }
}

const READ: Access = Access::Scope(Scope::OpsRead);
const WRITE: Access = Access::Scope(Scope::OpsWrite);
const INTEGRATOR: Access = Access::Scope(Scope::Integrator);

/// Every route of `origin serve`.
pub const ROUTES: &[Route] = &[
    route("POST", "/internal/webhooks", Access::Signed),
    route("POST", "/internal/dead-letters", Access::Signed),
    route("POST", "/webhooks/shopify", Access::Signed),
    route("GET", "/livez", Access::Public),
    route("GET", "/readyz", Access::Public),
    route("GET", "/metrics", READ),
    route("GET", "/admin/dead-letters", READ),
    route("GET", "/admin/dead-letters/{id}", READ),
    audited("POST", "/admin/dead-letters/replay", WRITE),
    audited("POST", "/admin/dead-letters/{id}/replay", WRITE),
    audited("POST", "/admin/catalog/resync", WRITE),
    route("GET", "/admin/catalog/runs", READ),
    route("GET", "/admin/catalog/runs/{id}", READ),
    audited("POST", "/admin/catalog/runs/{id}/cancel", WRITE),
    route("GET", "/admin/rules", READ),
    audited("PUT", "/admin/rules", WRITE),
    audited("DELETE", "/admin/rules", WRITE),
    audited("POST", "/admin/rules/import", WRITE),
    audited("POST", "/admin/rules/push", WRITE),
    route("GET", "/admin/audit", READ),
    route("GET", "/admin/salesforce/status", READ),
    route("GET", "/admin/salesforce/review", READ),
    audited("POST", "/admin/salesforce/review/link", WRITE),
    audited("POST", "/admin/salesforce/review/create", WRITE),
    route("GET", "/admin/salesforce/dead-letters", READ),
    route("GET", "/admin/salesforce/backfill", READ),
    audited("POST", "/admin/salesforce/dead-letters/replay", WRITE),
    audited("POST", "/admin/salesforce/backfill", WRITE),
    route("GET", "/admin/reconcile/runs", READ),
    route("GET", "/admin/reconcile/findings", READ),
    route("GET", "/admin/trace", READ),
    route("GET", "/admin/problems", READ),
    route("GET", "/admin/problems/{id}", READ),
    audited("POST", "/admin/problems/{id}/replay", WRITE),
    audited("POST", "/admin/problems/{id}/retry", WRITE),
    audited("POST", "/admin/problems/{id}/link", WRITE),
    audited("POST", "/admin/problems/{id}/create", WRITE),
    audited("POST", "/admin/problems/{id}/dismiss", WRITE),
    route("GET", "/console", Access::Console),
    route("GET", "/console/sign-in", Access::Console),
    route("POST", "/console/sign-in", Access::Console),
    route("POST", "/console/sign-out", Access::Console),
    route("GET", "/console/problems", Access::Console),
    route("GET", "/console/problems/{id}", Access::Console),
    route("POST", "/console/problems/{id}/{action}", Access::Console),
    route("GET", "/console/trace", Access::Console),
    route("GET", "/console/catalog", Access::Console),
    route("GET", "/console/catalog/{id}", Access::Console),
    route("POST", "/console/catalog/{id}/cancel", Access::Console),
    route("GET", "/console/rules", Access::Console),
    route("GET", "/console/drafts", Access::Console),
    route("GET", "/console/ownership", Access::Console),
    route("GET", "/console/salesforce", Access::Console),
    route("POST", "/v1/carts/validate", INTEGRATOR),
    audited("POST", "/v1/draft-orders", INTEGRATOR),
    route("GET", "/v1/draft-orders/{job}", INTEGRATOR),
];

/// The entry for `method` on `path` (the matched route's path).
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}
